import { taskStatusSchema, taskViewSchema } from '@tasker/core';
import { getTaskDefinition, taskDefinitions, taskNames } from '@tasker/tasks';
import { TRPCError, tracked } from '@trpc/server';
import { z } from 'zod';
import { publicProcedure, router } from './trpc.ts';

const taskUuid = z.uuid().describe('The id returned by run-task');

const taskParametersDoc = taskDefinitions
  .map((d) => `- \`${d.name}\`: ${d.description} Example: \`${JSON.stringify(d.example)}\``)
  .join('\n');

const runTaskInput = z
  .strictObject({
    task_name: z.enum(taskNames).describe('Which task type to run'),
    task_parameters: z
      .record(z.string(), z.unknown())
      .describe(`The parameters of that task type, checked against its schema:\n${taskParametersDoc}`),
  })
  .superRefine((value, ctx) => {
    // The parameters are checked against the named task's own schema; issues point into task_parameters.
    const parsed = getTaskDefinition(value.task_name)?.input.safeParse(value.task_parameters);
    for (const issue of parsed?.error?.issues ?? []) {
      ctx.addIssue({ ...issue, path: ['task_parameters', ...issue.path] } as Parameters<
        typeof ctx.addIssue
      >[0]);
    }
  });

const legacyOutputSchema = z
  .strictObject({
    status: z
      .enum(['PENDING', 'COMPLETED', 'FAILED'])
      .describe('PENDING until the task is finished (queued, running or waiting for a retry)'),
    result: z.unknown().describe('The result when COMPLETED, else null'),
    error: z.string().nullable().describe('Why it failed (or was cancelled) when FAILED, else null'),
  })
  .meta({ id: 'LegacyTaskOutput' });

/** A stream's last event id (a task version) → the version to resume after. */
export function resumeAfter(lastEventId: string | null | undefined): number {
  const version = Number(lastEventId);
  return lastEventId && Number.isInteger(version) ? version : -1;
}

export const appRouter = router({
  runTask: publicProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/run-task',
        summary: 'Submit a task',
        description: 'Validates the parameters, records the task and queues it. Answers at once with its id.',
        tags: ['tasks'],
        errorResponses: {
          400: 'Unknown task_name or invalid task_parameters',
          503: 'A dependency is unavailable',
        },
      },
    })
    .input(runTaskInput)
    .output(z.object({ task_uuid: z.uuid() }))
    .mutation(async ({ ctx, input }) => {
      const row = await ctx.service.submit(input.task_name, input.task_parameters);
      return { task_uuid: row.id };
    }),

  getTaskOutput: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/get-task-output',
        summary: "A task's status and result (the old service's shape)",
        description:
          'Exactly three keys. Cancelled tasks read FAILED. Newer clients should use GET /tasks/{id} for the full lifecycle.',
        tags: ['tasks'],
        errorResponses: { 400: 'Missing or malformed task_uuid', 404: 'Task not found' },
      },
    })
    .input(z.object({ task_uuid: taskUuid }))
    .output(z.object({ task_output: legacyOutputSchema }))
    .query(async ({ ctx, input }) => ({ task_output: await ctx.service.legacyOutput(input.task_uuid) })),

  getTask: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tasks/{id}',
        summary: 'The full task record',
        tags: ['tasks'],
        errorResponses: { 400: 'Malformed id', 404: 'Task not found' },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .query(({ ctx, input }) => ctx.service.get(input.id)),

  /**
   * One task, live: its current state at once, then every change, ending after the terminal state.
   * Each event's id is the task's version; reconnecting with it resumes without going backwards.
   */
  onTaskUpdate: publicProcedure
    .input(z.object({ id: taskUuid, lastEventId: z.string().nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const updates = await ctx.live.watch(
        input.id,
        resumeAfter(input.lastEventId),
        signal ?? new AbortController().signal,
      );
      if (!updates) throw new TRPCError({ code: 'NOT_FOUND', message: 'Task not found' });
      for await (const event of updates) yield tracked(String(event.version), event);
    }),

  /** Every task's changes as they happen (for dashboards), optionally only some task types or statuses. */
  onTasksUpdate: publicProcedure
    .input(
      z.object({ names: z.array(z.string()).optional(), statuses: z.array(taskStatusSchema).optional() }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      const names = input.names && new Set(input.names);
      const statuses = input.statuses && new Set(input.statuses);
      yield* ctx.live.watchAll(
        signal ?? new AbortController().signal,
        (event) => (!names || names.has(event.name)) && (!statuses || statuses.has(event.status)),
      );
    }),

  listTaskTypes: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/task-types',
        summary: 'The task types this server accepts, with the JSON Schema of their parameters and result',
        tags: ['tasks'],
      },
    })
    .input(z.object({}))
    .output(
      z.array(
        z.object({
          name: z.string(),
          description: z.string(),
          parameters: z.record(z.string(), z.unknown()),
          result: z.record(z.string(), z.unknown()),
          maxAttempts: z.number().int(),
          timeoutMs: z.number().int(),
        }),
      ),
    )
    .query(() =>
      taskDefinitions.map((d) => ({
        name: d.name,
        description: d.description,
        parameters: z.toJSONSchema(d.input, { io: 'input' }) as Record<string, unknown>,
        result: z.toJSONSchema(d.output) as Record<string, unknown>,
        maxAttempts: d.retry.attempts,
        timeoutMs: d.timeoutMs,
      })),
    ),
});

export type AppRouter = typeof appRouter;
