import {
  type ChildRow,
  STEP_STATUSES,
  TASK_STATUSES,
  type TaskListRow,
  type TaskRow,
  type TaskStatus,
  type TaskStepRow,
} from '@tasker/db';

export { isTerminal } from '@tasker/db';

import { z } from 'zod';

export const taskStatusSchema = z.enum(TASK_STATUSES).meta({ id: 'TaskStatus' });

export const taskErrorSchema = z
  .object({
    message: z.string(),
    name: z.string(),
    code: z
      .string()
      .describe('TIMEOUT, CANCELLED, STALLED, HANDLER_ERROR, INVALID_OUTPUT, UNKNOWN_TASK, ...'),
    attempt: z.number().int().optional(),
    at: z.string().optional(),
  })
  .meta({ id: 'TaskError' });

const usageTotalsShape = {
  model: z.string().describe('The model of the latest call'),
  promptTokens: z.number().int().describe('Tokens of the prompts'),
  completionTokens: z.number().int().describe('Tokens of the replies'),
  costUsd: z
    .number()
    .nullable()
    .describe(
      "US dollars, from the price table; null when a call's model has no price (its tokens still count)",
    ),
  calls: z.number().int().describe('Model calls that reported usage'),
  cachedCalls: z
    .number()
    .int()
    .optional()
    .describe(
      'Of the calls, those answered from the identical-prompt cache: no provider call, 0 tokens, 0 cost',
    ),
  cached: z
    .boolean()
    .optional()
    .describe('True when every call was answered from the identical-prompt cache'),
};

/** What a task's model calls used (`ctx.llm`): summed over its attempts, and per attempt. */
export const taskUsageSchema = z
  .object({
    ...usageTotalsShape,
    attempts: z
      .array(
        z.object({
          attempt: z.number().int().describe('The attempt, as in attemptErrors'),
          ...usageTotalsShape,
        }),
      )
      .describe('Each attempt that called a model, in order'),
  })
  .meta({ id: 'TaskUsage' });
export type TaskUsageView = z.output<typeof taskUsageSchema>;

/** A timestamp as the API writes it (ISO 8601 with offset). */
export const isoDate = z.iso.datetime({ offset: true });

/** What a WAITING task waits for (`waiting_for`): a time (a sleep), its child tasks, or a wait token. */
export const waitingForSchema = z
  .object({
    kind: z
      .enum(['time', 'children', 'token'])
      .describe(
        'time: its handler sleeps (ctx.sleep, ctx.sleepUntil); children: it waits for its child tasks (ctx.run, ctx.runMany); token: it waits for a wait token to be completed (ctx.waitForToken)',
      ),
    until: isoDate
      .optional()
      .describe(
        "kind time: when the wait ends: the task goes back to PENDING and its handler resumes; kind token: the token's timeout",
      ),
    token: z
      .uuid()
      .optional()
      .describe('kind token: the wait token it waits for: POST /tokens/{token}/complete {output} resumes it'),
    children: z
      .array(z.uuid())
      .optional()
      .describe('kind children: the ids of the child tasks it waits for; it resumes when the last one ends'),
  })
  .meta({ id: 'WaitingFor' });

/** A task's children (ctx.run, ctx.runMany) counted: in all, and by status (every status named, 0 included). */
export const childrenSummarySchema = z
  .object({
    total: z.number().int().describe('How many child tasks it submitted'),
    byStatus: z
      .object(
        Object.fromEntries(TASK_STATUSES.map((status) => [status, z.number().int()])) as Record<
          TaskStatus,
          z.ZodNumber
        >,
      )
      .describe('How many of them are in each status'),
  })
  .meta({ id: 'ChildrenSummary' });
export type ChildrenSummaryView = z.output<typeof childrenSummarySchema>;

/** One child task, as its parent's full record lists it. */
export const childTaskSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    status: taskStatusSchema,
    createdAt: isoDate,
    finishedAt: isoDate.nullable(),
  })
  .meta({ id: 'ChildTask' });
export type ChildTaskView = z.output<typeof childTaskSchema>;

/** Children the full record of a task lists at most (the rest: GET /tasks?parent_id=). */
export const CHILD_LIST_LIMIT = 100;

/** What a task without children shows. */
export const NO_CHILDREN: ChildrenSummaryView = {
  total: 0,
  byStatus: Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as ChildrenSummaryView['byStatus'],
};

/** Bytes of UTF-8 a step's preview of its result holds at most. */
export const STEP_PREVIEW_BYTES = 256;

/** One durable step of a task's handler (`ctx.step`, `ctx.sleep`), as the task record shows it. */
export const taskStepSchema = z
  .object({
    id: z
      .string()
      .describe(
        "The step id its handler gave (ctx.step); a sleep: $sleep:N; a wait token's making: $token:N (its preview without the callback URL), its wait: $token-wait:N",
      ),
    seq: z.number().int().describe("Its place in the handler's order, 0 first"),
    status: z
      .enum(STEP_STATUSES)
      .describe(
        'completed (its result recorded: no run repeats it); failed (its last run threw: the next attempt runs it again; a wait token that timed out); waiting (a sleep or a wait not over yet)',
      ),
    startedAt: isoDate,
    finishedAt: isoDate.nullable(),
    preview: z
      .string()
      .nullable()
      .describe(
        `Its result as JSON text, cut at ${STEP_PREVIEW_BYTES} bytes of UTF-8 (ending with "…" when cut); null unless completed`,
      ),
    error: taskErrorSchema.nullable().describe('Why its last run failed; null unless failed'),
  })
  .meta({ id: 'TaskStep' });
export type TaskStepView = z.output<typeof taskStepSchema>;

/** A task as every newer route, stream and the SDK report it. */
export const taskViewSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    status: taskStatusSchema,
    input: z.unknown().describe('The task_parameters it was submitted with'),
    output: z.unknown().describe('The result, once COMPLETED; null before'),
    error: taskErrorSchema.nullable(),
    attemptErrors: z.array(taskErrorSchema),
    waitingFor: waitingForSchema
      .nullable()
      .describe('While WAITING: what it waits for (a time, for a sleep); null otherwise'),
    parentId: z
      .uuid()
      .nullable()
      .describe('The task whose handler submitted it (ctx.run, ctx.runMany), or null: a top-level task'),
    children: childrenSummarySchema
      .optional()
      .describe('Its child tasks counted by status: in GET /tasks/{id} (getTask) and in list rows'),
    childTasks: z
      .array(childTaskSchema)
      .optional()
      .describe(
        `Its first ${CHILD_LIST_LIMIT} child tasks, in the order submitted: in GET /tasks/{id} (getTask) only`,
      ),
    steps: z
      .array(taskStepSchema)
      .optional()
      .describe(
        "The durable steps its handler reached (ctx.step, ctx.sleep), in the handler's order: in GET /tasks/{id} (getTask) only",
      ),
    progress: z
      .unknown()
      .describe('The latest progress the handler reported ({percent?, partial?, message?}), or null'),
    /** +1 on every change; the id of each event in a stream. */
    version: z.number().int().describe('Increases by one on every change: compare to order states'),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    priority: z.number().int().describe('0..100, higher runs first'),
    concurrencyKey: z
      .string()
      .describe(
        "The key whose concurrency limits the task shares (concurrency_key; the tenant's when none was given)",
      ),
    singletonKey: z
      .string()
      .nullable()
      .describe('While the task is unfinished, a submission with this singleton_key returns it; null: none'),
    debounceKey: z
      .string()
      .nullable()
      .describe(
        'While the task is PENDING, a submission with this debounce key joins it (its input and start); null: none',
      ),
    tags: z
      .array(z.string())
      .describe('The labels it was submitted with (tags), in their order; [] when none'),
    metadata: z
      .record(z.string(), z.unknown())
      .nullable()
      .describe('The JSON object it was submitted with (metadata), or null: none'),
    scheduleId: z
      .uuid()
      .nullable()
      .describe('The schedule whose tick made it (GET /schedules/{id}), or null: not a scheduled run'),
    scheduledFor: isoDate.nullable().describe('The tick of its schedule it was made for, or null'),
    webhookUrl: z
      .string()
      .nullable()
      .describe(
        'Where its final state is POSTed when it finishes (webhook_url, signed with the tenant’s task secret), or null: none',
      ),
    usage: taskUsageSchema
      .nullable()
      .describe(
        'What its model calls used (tokens, cost), summed over its attempts and per attempt; null: no model call reported usage',
      ),
    runAfter: isoDate.nullable().describe('A delayed task does not start before this time'),
    ttlMs: z.number().int().nullable().describe('How long it may wait to start (ttl_ms), or null: for ever'),
    expiresAt: isoDate
      .nullable()
      .describe('Not started by then, it ends EXPIRED (run_after or creation + ttl_ms); null without a ttl'),
    cancelRequestedAt: isoDate
      .nullable()
      .describe('When cancellation was asked for (the task ends CANCELLED)'),
    createdAt: isoDate,
    startedAt: isoDate.nullable(),
    finishedAt: isoDate.nullable(),
    updatedAt: isoDate,
  })
  .meta({ id: 'Task' });

export type TaskView = z.output<typeof taskViewSchema>;

/** A nullable timestamp as the API writes it. */
export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * A task's public record. `steps` (its durable steps, read from `task_steps`) only where the caller
 * read them: the full record of one task.
 */
export function toTaskView(
  row: TaskRow,
  steps?: readonly TaskStepRow[],
  children?: { summary: ChildrenSummaryView; list: readonly ChildRow[] },
): TaskView {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    input: row.input,
    output: row.output ?? null,
    error: row.error ?? null,
    attemptErrors: row.attemptErrors,
    waitingFor: row.status === 'WAITING' ? (row.waitingFor ?? null) : null,
    parentId: row.parentId ?? null,
    ...(children
      ? {
          children: children.summary,
          childTasks: children.list.map((c) => ({
            id: c.id,
            name: c.name,
            status: c.status,
            createdAt: c.createdAt.toISOString(),
            finishedAt: iso(c.finishedAt),
          })),
        }
      : {}),
    ...(steps ? { steps: steps.map(toStepView) } : {}),
    progress: row.progress ?? null,
    version: row.version,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    concurrencyKey: row.concurrencyKey ?? row.tenantId,
    singletonKey: row.singletonKey ?? null,
    debounceKey: row.debounceKey ?? null,
    tags: row.tags ?? [],
    metadata: row.metadata ?? null,
    scheduleId: row.scheduleId ?? null,
    scheduledFor: iso(row.scheduledFor ?? null),
    webhookUrl: row.webhookUrl ?? null,
    usage: row.usage ?? null,
    runAfter: iso(row.runAfter),
    ttlMs: row.ttlMs,
    expiresAt: iso(row.expiresAt),
    cancelRequestedAt: iso(row.cancelRequestedAt),
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Step ids of the steps that make wait tokens (`ctx.createToken`): `$token:N`. */
export const TOKEN_STEP_PREFIX = '$token:';

/**
 * What a step's preview shows of its result: all of it, but for a wait token's step, whose callback
 * URL (a secret that completes the token without a key) is left out: its id and timeout only.
 */
function shown(step: TaskStepRow): unknown {
  if (!step.stepId.startsWith(TOKEN_STEP_PREFIX)) return step.output ?? null;
  const { id, timeoutAt } = (step.output ?? {}) as { id?: unknown; timeoutAt?: unknown };
  return { id, timeoutAt };
}

export function toStepView(step: TaskStepRow): TaskStepView {
  const json = step.status === 'completed' ? JSON.stringify(shown(step)) : undefined;
  return {
    id: step.stepId,
    seq: step.seq,
    status: step.status,
    startedAt: step.startedAt.toISOString(),
    finishedAt: iso(step.finishedAt),
    preview:
      json === undefined
        ? null
        : Buffer.byteLength(json) > STEP_PREVIEW_BYTES
          ? `${cutUtf8(json, STEP_PREVIEW_BYTES - 3)}…`
          : json,
    error: step.status === 'failed' ? (step.error ?? null) : null,
  };
}

/** What is published on every state change, and cached for finished tasks. No input: it may be large. */
export const taskEventSchema = taskViewSchema.omit({ input: true });
export type TaskEvent = z.output<typeof taskEventSchema>;

export function toTaskEvent(row: Omit<TaskRow, 'input'>): TaskEvent {
  const { input: _input, ...event } = toTaskView({ ...row, input: null });
  return event;
}

/**
 * A durable step as a task's live stream sends it when the step is written (it ended, failed, or a
 * wait began): the step as the task record shows it (`TaskStep`), with its task's id. A later event
 * for the same step id replaces the earlier one.
 */
export const taskStepEventSchema = taskStepSchema
  .extend({ taskId: z.uuid().describe('The task the step belongs to') })
  .meta({ id: 'TaskStepEvent' });
export type TaskStepEvent = z.output<typeof taskStepEventSchema>;

export function toTaskStepEvent(step: TaskStepRow): TaskStepEvent {
  return { taskId: step.taskId, ...toStepView(step) };
}

/**
 * One event of a task's live activity (SSE `GET /tasks/{id}/events`, tRPC `onTaskActivity`): a new
 * state of the task (`WAITING` with what it waits for included), or one of its steps written.
 */
export type TaskActivity = { type: 'state'; task: TaskEvent } | { type: 'step'; step: TaskStepEvent };

/** Bytes of UTF-8 a preview of a payload (or an error message) in a list row holds at most. */
export const PREVIEW_BYTES = 1024;
/**
 * Most bytes one list row takes in a JSON answer, whatever its task holds: 3 strings of at most
 * PREVIEW_BYTES (input, output, error message), each at most doubled by JSON escaping (`"` and `\`
 * become two bytes; PostgreSQL's JSON text holds no raw control character), its metadata (at most
 * 4 KB of JSON), its tags (at most 10 of 64 characters), plus the fixed fields. `view.test.ts`
 * checks it against the worst case; the README and the route's description state it.
 */
export const MAX_LIST_ROW_BYTES = 16 * 1024;

/** `text` cut to at most `maxBytes` of UTF-8, on a character boundary. */
export function cutUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

export const previewSchema = z
  .object({
    json: z
      .string()
      .describe(
        `The value as JSON text (as PostgreSQL writes jsonb: a space after ":" and ","), cut at ${PREVIEW_BYTES} bytes of UTF-8`,
      ),
    truncated: z.boolean().describe('True when json is cut: the whole value is in GET /tasks/{id}'),
    bytes: z.number().int().describe('The size of the whole JSON text, in bytes of UTF-8'),
  })
  .meta({ id: 'Preview' });
export type Preview = z.output<typeof previewSchema>;

/**
 * A task as a list shows it (GET /tasks, tRPC listTasks, the SDK's `list()`): the record's fixed
 * fields, a bounded preview of its input and output, and its error with the message cut at
 * PREVIEW_BYTES; no progress, no attempt errors. At most MAX_LIST_ROW_BYTES of JSON. The full
 * record: GET /tasks/{id}.
 */
export const taskSummarySchema = taskViewSchema
  .omit({
    input: true,
    output: true,
    progress: true,
    attemptErrors: true,
    steps: true,
    childTasks: true,
    error: true,
    singletonKey: true,
    debounceKey: true,
    scheduleId: true,
    scheduledFor: true,
    webhookUrl: true,
    usage: true,
  })
  .extend({
    inputPreview: previewSchema.describe('The parameters it was submitted with, as a preview'),
    outputPreview: previewSchema.nullable().describe('The result, as a preview, once COMPLETED; null before'),
    error: taskErrorSchema
      .nullable()
      .describe(
        `The last error, its message cut at ${PREVIEW_BYTES} bytes (ending with "…" when cut); every attempt's: GET /tasks/{id}`,
      ),
  })
  .meta({ id: 'TaskSummary' });
export type TaskSummary = z.output<typeof taskSummarySchema>;

function preview(head: string, bytes: number): Preview {
  const json = cutUtf8(head, PREVIEW_BYTES);
  return { json, truncated: bytes > Buffer.byteLength(json), bytes };
}

function withoutChildIds(waitingFor: NonNullable<TaskRow['waitingFor']>): NonNullable<TaskRow['waitingFor']> {
  const { children: _ids, ...rest } = waitingFor;
  return rest;
}

export function toTaskSummary(row: TaskListRow, children?: ChildrenSummaryView): TaskSummary {
  const error = row.error && {
    ...row.error,
    message:
      Buffer.byteLength(row.error.message) > PREVIEW_BYTES
        ? `${cutUtf8(row.error.message, PREVIEW_BYTES - 3)}…`
        : row.error.message,
    name: cutUtf8(row.error.name, 128),
    code: cutUtf8(row.error.code, 128),
  };
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    inputPreview: preview(row.inputHead, row.inputBytes),
    outputPreview:
      row.outputHead === null || row.outputBytes === null ? null : preview(row.outputHead, row.outputBytes),
    error: error ?? null,
    version: row.version,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    concurrencyKey: row.concurrencyKey ?? row.tenantId,
    tags: row.tags ?? [],
    metadata: row.metadata ?? null,
    // Without the children's ids (up to CHILD_TASK_MAX_FAN_OUT of them): a row stays bounded; the
    // count is in `children`, the ids in the full record.
    waitingFor: row.status === 'WAITING' && row.waitingFor ? withoutChildIds(row.waitingFor) : null,
    parentId: row.parentId ?? null,
    ...(children ? { children } : {}),
    runAfter: iso(row.runAfter),
    ttlMs: row.ttlMs,
    expiresAt: iso(row.expiresAt),
    cancelRequestedAt: iso(row.cancelRequestedAt),
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    updatedAt: row.updatedAt.toISOString(),
  };
}
