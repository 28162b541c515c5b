import { MAX_PRIORITY, taskStatusSchema, taskViewSchema } from '@tasker/core';
import { getTaskDefinition, taskDefinitions, taskNames } from '@tasker/tasks';
import { TRPCError, tracked } from '@trpc/server';
import { z } from 'zod';
import { publicProcedure, router } from './trpc.ts';

const taskUuid = z.uuid().describe('The id returned by run-task');

const taskParametersDoc = taskDefinitions
  .map((d) => `- \`${d.name}\`: ${d.description} Example: \`${JSON.stringify(d.example)}\``)
  .join('\n');

const DAY_MS = 24 * 3600 * 1000;

const runTaskInput = z
  .strictObject({
    task_name: z.enum(taskNames).describe('Which task type to run'),
    task_parameters: z
      .record(z.string(), z.unknown())
      .describe(`The parameters of that task type, checked against its schema:\n${taskParametersDoc}`),
    priority: z
      .number()
      .int()
      .min(0)
      .max(MAX_PRIORITY)
      .optional()
      .describe('0 (default) to 100: higher runs first'),
    delay_ms: z
      .number()
      .int()
      .min(0)
      .max(30 * DAY_MS)
      .optional()
      .describe('Start no sooner than this many ms from now'),
    run_at: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('Start no sooner than this time, within 30 days (instead of delay_ms)'),
    max_attempts: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .describe("Attempts in all (default: the task type's)"),
    timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(DAY_MS)
      .optional()
      .describe("An attempt running longer is aborted and counts as failed (default: the task type's)"),
    idempotency_key: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe('The same key within IDEMPOTENCY_WINDOW_SECONDS returns the first task instead of a new one'),
  })
  .superRefine((value, ctx) => {
    // The parameters are checked against the named task's own schema; issues point into task_parameters.
    const parsed = getTaskDefinition(value.task_name)?.input.safeParse(value.task_parameters);
    for (const issue of parsed?.error?.issues ?? []) {
      ctx.addIssue({ ...issue, path: ['task_parameters', ...issue.path] } as Parameters<
        typeof ctx.addIssue
      >[0]);
    }
    if (value.delay_ms !== undefined && value.run_at !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'give delay_ms or run_at, not both' });
    }
    if (value.run_at !== undefined && Date.parse(value.run_at) - Date.now() > 30 * DAY_MS) {
      ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'must be within 30 days from now' });
    }
  });

const queueStateSchema = z
  .object({
    paused: z.boolean(),
    waiting: z.number().int().describe('Queued and ready to run (or held by the pause)'),
    delayed: z.number().int().describe('Waiting for their start time or a retry backoff'),
    active: z.number().int(),
    failed: z.number().int().describe('Failed jobs BullMQ keeps for 24 h (their tasks are FAILED)'),
    pausedTypes: z.array(z.string()).describe('Task types paused on their own'),
  })
  .meta({ id: 'QueueState' });

const pauseInput = z.object({
  task_name: z.enum(taskNames).optional().describe('Only this task type; without it, every task type'),
});

const runTaskOutput = z.object({
  task_uuid: z.uuid(),
  replayed: z
    .boolean()
    .optional()
    .describe('Present when an idempotency_key was given: true if this is an earlier task'),
});

/** Query-string lists: `status=PENDING&status=RUNNING` or `status=PENDING,RUNNING`. */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess(
    (value) => (typeof value === 'string' ? value.split(',') : value),
    z.array(item).max(20).optional(),
  );

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
    .output(runTaskOutput)
    .mutation(async ({ ctx, input }) => {
      const result = await ctx.service.submit(input.task_name, input.task_parameters, {
        priority: input.priority,
        delayMs: input.delay_ms,
        runAt: input.run_at ? new Date(input.run_at) : undefined,
        maxAttempts: input.max_attempts,
        timeoutMs: input.timeout_ms,
        idempotencyKey: input.idempotency_key,
      });
      // The old contract is exactly {task_uuid}; `replayed` only answers callers who sent a key.
      return input.idempotency_key === undefined
        ? { task_uuid: result.id }
        : { task_uuid: result.id, replayed: result.replayed };
    }),

  cancelTask: publicProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tasks/{id}/cancel',
        summary: 'Cancel a task',
        description:
          'A PENDING or delayed task never runs (CANCELLED at once). A RUNNING one has its AbortSignal fired on ' +
          'whichever worker runs it and ends CANCELLED shortly after (not retried); the answer shows it RUNNING ' +
          'with cancelRequestedAt set. A finished task: 409.',
        tags: ['tasks'],
        errorResponses: { 400: 'Malformed id', 404: 'Task not found', 409: 'The task is already finished' },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .mutation(({ ctx, input }) => ctx.service.cancel(input.id)),

  retryTask: publicProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tasks/{id}/retry',
        summary: 'Run a FAILED or CANCELLED task again',
        description:
          'The task keeps its id and goes back to PENDING for a new round of max_attempts attempts; the errors of its ' +
          'earlier attempts stay in attemptErrors. Any other status: 409.',
        tags: ['tasks'],
        errorResponses: {
          400: 'Malformed id',
          404: 'Task not found',
          409: 'The task is not FAILED or CANCELLED',
        },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .mutation(({ ctx, input }) => ctx.service.retry(input.id)),

  getQueue: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/queue',
        summary: 'Whether processing is paused, and queue depths',
        tags: ['queue'],
      },
    })
    .input(z.object({}))
    .output(queueStateSchema)
    .query(({ ctx }) => ctx.service.queueState()),

  pauseQueue: publicProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/queue/pause',
        summary: 'Pause processing (of task_name only, if given)',
        description:
          'Workers start no queued task (of task_name only, if given) until resumed; running tasks finish; ' +
          'submissions are still accepted and wait. Nothing queued is lost.',
        tags: ['queue'],
      },
    })
    .input(pauseInput)
    .output(queueStateSchema)
    .mutation(({ ctx, input }) => ctx.service.setPaused(true, input.task_name)),

  resumeQueue: publicProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/queue/resume',
        summary: 'Resume processing (of task_name only, if given)',
        tags: ['queue'],
      },
    })
    .input(pauseInput)
    .output(queueStateSchema)
    .mutation(({ ctx, input }) => ctx.service.setPaused(false, input.task_name)),

  listTasks: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tasks',
        summary: 'List tasks, newest first',
        description:
          'Cursor pagination: pass next_cursor as cursor to get the next page; null on the last page.',
        tags: ['tasks'],
        errorResponses: { 400: 'A malformed filter or cursor' },
      },
    })
    .input(
      z.object({
        status: list(taskStatusSchema).describe(
          'Only these statuses (repeat the parameter or separate with commas)',
        ),
        name: list(z.string().min(1)).describe('Only these task types'),
        created_after: z.iso.datetime({ offset: true }).optional().describe('Created at or after this time'),
        created_before: z.iso.datetime({ offset: true }).optional().describe('Created before this time'),
        limit: z.coerce.number().int().min(1).max(500).default(50).describe('Page size (1..500, default 50)'),
        cursor: z.string().max(200).optional().describe('next_cursor of the previous page'),
      }),
    )
    .output(z.object({ tasks: z.array(taskViewSchema), next_cursor: z.string().nullable() }))
    .query(async ({ ctx, input }) => {
      const page = await ctx.service.list({
        statuses: input.status,
        names: input.name,
        createdAfter: input.created_after ? new Date(input.created_after) : undefined,
        createdBefore: input.created_before ? new Date(input.created_before) : undefined,
        cursor: input.cursor,
        limit: input.limit,
      });
      return { tasks: page.tasks, next_cursor: page.nextCursor };
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
