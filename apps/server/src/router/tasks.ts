import {
  MAX_BATCH_SIZE,
  MAX_LIST_ROW_BYTES,
  PREVIEW_BYTES,
  taskSummarySchema,
  taskViewSchema,
} from '@tasker/engine';
import { getTaskDefinition, taskDefinitions, taskNames } from '@tasker/tasks';
import { z } from 'zod';
import { readProcedure, router, writeProcedure } from '../trpc.ts';
import { taskFilterShape, toTaskFilter } from './filter.ts';
import { checkRunOptions, restPage, runOptionsShape, taskUuid, toSubmitOptions } from './schemas.ts';

/** A task type, its parameters and the run options of run-task: POST /tasks's body, a batch's item. */
const taskBody = z.strictObject({
  name: z.enum(taskNames).describe('Which task type to run'),
  input: z
    .record(z.string(), z.unknown())
    .describe('The parameters of that task type, checked against its schema'),
  ...runOptionsShape,
});

/**
 * POST /tasks: a task type and its parameters, and the run options of run-task. The document
 * (openapi.ts) describes this body as one schema per task type, from the catalog; here the
 * parameters are checked by the engine against the named type's schema, as on run-task.
 */
export const createTaskInput = taskBody.superRefine(checkRunOptions);

/**
 * One task of POST /tasks/batch: createTask's body, with its parameters checked here against its
 * type's schema (so that one 400 names every bad item, each under its index: `tasks.3.input.a`),
 * and no debounce (collapsing submissions is a single submission's business).
 */
const batchItem = taskBody.superRefine((item, ctx) => {
  checkRunOptions(item, ctx);
  if (item.debounce !== undefined)
    ctx.addIssue({
      code: 'custom',
      path: ['debounce'],
      message: 'is not taken in a batch: submit a debounced task on its own (POST /tasks)',
    });
  const parsed = getTaskDefinition(item.name)?.input.safeParse(item.input);
  for (const issue of parsed?.error?.issues ?? [])
    ctx.addIssue({ code: 'custom', path: ['input', ...issue.path], message: issue.message });
});

/** POST /tasks/batch: 1 to MAX_BATCH_SIZE tasks, stored all or nothing. */
export const runTasksInput = z.strictObject({
  tasks: z
    .array(batchItem)
    .min(1)
    .max(MAX_BATCH_SIZE)
    .describe(
      `1 to ${MAX_BATCH_SIZE} tasks, each as POST /tasks takes one (name, input, run options; no debounce)`,
    ),
});

const batchItemResult = z.object({
  id: z.uuid().describe("The item's task: the new one, or the existing one its key matched"),
  created: z
    .boolean()
    .describe('True when this item was stored as a new task (a single submission answers 201)'),
  matched: z
    .enum(['idempotency', 'singleton'])
    .nullable()
    .describe(
      'Null when created; else why an existing task answers: idempotency (the task this idempotency_key made earlier, as a single submission answers 201) or singleton (the unfinished task holding the singleton_key, unchanged, as a single submission answers 200)',
    ),
});

/** Reading tasks, and the state changes a caller may ask for: create, cancel and retry. */
export const tasksRouter = router({
  createTask: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tasks',
        summary: 'Create a task',
        description:
          "Validates the parameters against the task type's schema, records the task and queues it. Answers 201 at once " +
          'with the task record as recorded (PENDING), in the shape GET /tasks/{id} gives. With an ' +
          'idempotency_key seen within IDEMPOTENCY_WINDOW_SECONDS, the earlier task (201, as the first answer). ' +
          'With a singleton_key held by an unfinished task of this tenant, that task, unchanged: 200, nothing stored. ' +
          'With a debounce key held by a PENDING task of this tenant, that task, now with this input and its start moved: 200.',
        tags: ['tasks'],
        successStatus: 201,
        successDescription: 'The task is recorded and queued: its record',
        otherSuccess: {
          status: 200,
          description:
            'An existing task answers instead of a new one: the unfinished task holding the singleton_key (unchanged), or the PENDING task holding the debounce key (with this input and start now)',
        },
        errorResponses: {
          400: "Unknown name, input that does not fit its task type's schema, or a run option out of range",
          503: 'PostgreSQL (or Redis, in that mode) is unavailable, or the task type needs a service that is not configured (query_chatgpt without OPENAI_API_KEY)',
        },
      },
      taskParameters: 'input',
    })
    .input(createTaskInput)
    .output(taskViewSchema)
    .mutation(async ({ ctx, input }) => {
      const submitted = await ctx.tasks.submit(ctx.identity.tenantId, {
        name: input.name,
        input: input.input,
        ...toSubmitOptions(input),
      });
      if (submitted.deduplicated) ctx.rest.status = 200;
      return submitted.task;
    }),

  runTasks: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tasks/batch',
        summary: 'Create many tasks at once, all or nothing',
        description:
          `1 to ${MAX_BATCH_SIZE} tasks, each as POST /tasks takes one (debounce aside). Every item is checked first: ` +
          'if any is invalid, the answer is a 400 whose issues name each bad item by its index (tasks.3.input.a) and ' +
          'nothing is stored. Otherwise every task is stored in one transaction, and the answer lists one result per ' +
          'item, in order: its task id, and whether it was created or an idempotency_key or singleton_key matched an ' +
          "existing task (per item, as for a single submission). The tenant's and the task types' max_queued count " +
          'the batch as a whole: past one, 429 QUEUE_FULL and nothing stored. 201 when at least one task was created, ' +
          'else 200. The body is bounded by BODY_LIMIT_BYTES (413 past it).',
        tags: ['tasks'],
        successStatus: 201,
        successDescription: 'Every task is recorded: one result per item, in order',
        otherSuccess: {
          status: 200,
          description: 'No task was created: every item was answered by an existing task its key matched',
        },
        errorResponses: {
          400: 'No tasks or more than 1,000, or any item invalid (its issues under tasks.<index>): nothing stored',
          429: "The tenant's or a task type's max_queued would be passed by the batch (QUEUE_FULL): nothing stored",
          503: 'PostgreSQL (or Redis, in that mode) is unavailable, or a task type needs a service that is not configured',
        },
      },
    })
    .input(runTasksInput)
    .output(z.object({ tasks: z.array(batchItemResult) }))
    .mutation(async ({ ctx, input }) => {
      const results = await ctx.tasks.submitMany(
        ctx.identity.tenantId,
        input.tasks.map((item) => ({ name: item.name, input: item.input, ...toSubmitOptions(item) })),
      );
      if (!results.some((r) => r.created)) ctx.rest.status = 200;
      return { tasks: results };
    }),

  getTask: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tasks/{id}',
        summary: 'The full task record',
        description:
          'Everything about one task: its status and progress, its input and output or error, its attempts and their errors, and its times.',
        tags: ['tasks'],
        successDescription: 'The task',
        errorResponses: { 400: 'Malformed id (not a UUID)', 404: 'No task of this tenant has this id' },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .query(({ ctx, input }) => ctx.tasks.get(ctx.identity.tenantId, input.id)),

  listTasks: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tasks',
        summary: 'List tasks, newest first',
        description:
          'Cursor pagination: pass next_cursor as cursor to get the next page; null on the last page. ' +
          'input_contains and output_contains search the payloads (JSONB containment), tag keeps the tasks carrying every tag given, ' +
          'metadata_contains searches the metadata (JSONB containment), parent_id keeps the child tasks of one task; every filter combines with the others. ' +
          `Each row is a TaskSummary: a preview of its input and output (their JSON text cut at ${PREVIEW_BYTES} bytes, with truncated and the whole size), ` +
          `its error with the message cut, no progress nor attempt errors; at most ${MAX_LIST_ROW_BYTES / 1024} KiB of JSON per row, ` +
          `so a page of 500 is at most ${(500 * MAX_LIST_ROW_BYTES) / 1024 / 1024} MiB. The full record of a task: GET /tasks/{id}.`,
        tags: ['tasks'],
        successDescription: "A page of this tenant's tasks, newest first, and the cursor of the next page",
        errorResponses: { 400: 'A malformed filter, limit or cursor' },
      },
    })
    .input(
      z.object({
        ...taskFilterShape,
        limit: z.coerce.number().int().min(1).max(500).default(50).describe('Page size (1..500, default 50)'),
        cursor: z.string().max(200).describe('next_cursor of the previous page').optional(),
      }),
    )
    .output(z.object({ tasks: z.array(taskSummarySchema), next_cursor: z.string().nullable() }))
    .query(async ({ ctx, input }) => {
      const page = await ctx.tasks.list(ctx.identity.tenantId, {
        ...toTaskFilter(input),
        cursor: input.cursor,
        limit: input.limit,
      });
      return restPage(page);
    }),

  cancelTask: writeProcedure
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
        successDescription: 'The task, CANCELLED, or RUNNING with cancelRequestedAt set',
        errorResponses: {
          400: 'Malformed id (not a UUID)',
          404: 'No task of this tenant has this id',
          409: 'The task is already finished',
        },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .mutation(({ ctx, input }) => ctx.tasks.cancel(ctx.identity.tenantId, input.id)),

  retryTask: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tasks/{id}/retry',
        summary: 'Run a FAILED, CANCELLED or EXPIRED task again',
        description:
          'The task keeps its id and goes back to PENDING for a new round of max_attempts attempts; the errors of its ' +
          'earlier attempts stay in attemptErrors, and it takes its singleton_key again. Any other status: 409; ' +
          'a child task of it unfinished: 409 CHILDREN_RUNNING; its singleton_key held by another unfinished task: ' +
          '409 SINGLETON_KEY_HELD, naming that task.',
        tags: ['tasks'],
        successDescription: 'The task, PENDING again',
        errorResponses: {
          400: 'Malformed id (not a UUID)',
          404: 'No task of this tenant has this id',
          409: 'The task is not FAILED, CANCELLED or EXPIRED (CONFLICT); a child of it is unfinished (CHILDREN_RUNNING); another unfinished task holds its singleton_key (SINGLETON_KEY_HELD)',
        },
      },
    })
    .input(z.object({ id: taskUuid }))
    .output(taskViewSchema)
    .mutation(({ ctx, input }) => ctx.tasks.retry(ctx.identity.tenantId, input.id)),

  listTaskTypes: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/task-types',
        summary: 'The task types this server accepts, with the JSON Schema of their parameters and result',
        description:
          "One entry per task type: its name (run-task's task_name), what it does, the JSON Schema of its task_parameters and of its result, and its default attempts and timeout.",
        tags: ['tasks'],
        successDescription: 'Every task type',
        errorResponses: {},
        unavailable: 'PostgreSQL is unavailable, so the API key cannot be checked (when AUTH_MODE=required)',
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
