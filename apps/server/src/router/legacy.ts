import { taskDefinitions, taskNames } from '@tasker/tasks';
import { z } from 'zod';
import { readProcedure, router, writeProcedure } from '../trpc.ts';
import { checkRunOptions, runOptionsShape, taskUuid, toSubmitOptions } from './schemas.ts';

const taskParametersDoc = taskDefinitions
  .map((d) => `- \`${d.name}\`: ${d.description} Example: \`${JSON.stringify(d.example)}\``)
  .join('\n');

const runTaskInput = z
  .strictObject({
    task_name: z.enum(taskNames).describe('Which task type to run'),
    task_parameters: z
      .record(z.string(), z.unknown())
      .describe(`The parameters of that task type, checked against its schema:\n${taskParametersDoc}`),
    ...runOptionsShape,
  })
  .superRefine(checkRunOptions);

const runTaskOutput = z.object({
  task_uuid: z.uuid(),
  replayed: z
    .boolean()
    .optional()
    .describe('Present when an idempotency_key was given: true if this is an earlier task'),
  deduplicated: z
    .boolean()
    .optional()
    .describe(
      'Present when a singleton_key or a debounce was given: true if an existing task answers (the unfinished holder of the singleton_key; the PENDING holder of the debounce key, which took these parameters and its start from this submission)',
    ),
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

/**
 * The old service's contract, kept to the letter: `POST /run-task` answers `{task_uuid}`, and
 * `GET /get-task-output` answers exactly `{status, result, error}` in its three words.
 */
export const legacyRouter = router({
  runTask: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/run-task',
        summary: 'Submit a task',
        description: 'Validates the parameters, records the task and queues it. Answers at once with its id.',
        tags: ['tasks'],
        successDescription:
          'The task is recorded and queued: its id (and `replayed`, when an idempotency_key was sent; `deduplicated`, when a singleton_key or a debounce was sent)',
        errorResponses: {
          400: 'Unknown task_name, task_parameters that do not fit its schema, or a run option out of range',
          503: 'PostgreSQL (or Redis, in that mode) is unavailable, or the task type needs a service that is not configured (query_chatgpt without OPENAI_API_KEY)',
        },
      },
      taskParameters: 'task_parameters',
    })
    .input(runTaskInput)
    .output(runTaskOutput)
    .mutation(async ({ ctx, input }) => {
      // The parameters are checked once, by the engine, against the task type's own schema.
      const result = await ctx.tasks.submit(ctx.identity.tenantId, {
        name: input.task_name,
        input: input.task_parameters,
        ...toSubmitOptions(input),
      });
      // The old contract is exactly {task_uuid}; `replayed` and `deduplicated` only answer callers who sent a key.
      return {
        task_uuid: result.id,
        ...(input.idempotency_key === undefined ? {} : { replayed: result.replayed }),
        ...(input.singleton_key === undefined && input.debounce === undefined
          ? {}
          : { deduplicated: result.deduplicated !== undefined }),
      };
    }),

  getTaskOutput: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/get-task-output',
        summary: "A task's status and result (the old service's shape)",
        description:
          'Exactly three keys. Cancelled tasks read FAILED. Newer clients should use GET /tasks/{id} for the full lifecycle.',
        tags: ['tasks'],
        successDescription: "The task's status, and its result or error once finished",
        errorResponses: {
          400: 'Missing or malformed task_uuid',
          404: 'No task of this tenant has this id',
        },
      },
    })
    .input(z.object({ task_uuid: taskUuid }))
    .output(z.object({ task_output: legacyOutputSchema }))
    .query(async ({ ctx, input }) => ({
      task_output: await ctx.tasks.legacyOutput(ctx.identity.tenantId, input.task_uuid),
    })),
});
