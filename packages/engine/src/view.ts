import { TASK_STATUSES, type TaskRow } from '@tasker/db';

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

/** A timestamp as the API writes it (ISO 8601 with offset). */
export const isoDate = z.iso.datetime({ offset: true });

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
    progress: z
      .unknown()
      .describe('The latest progress the handler reported ({percent?, partial?, message?}), or null'),
    /** +1 on every change; the id of each event in a stream. */
    version: z.number().int().describe('Increases by one on every change: compare to order states'),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    priority: z.number().int().describe('0..100, higher runs first'),
    runAfter: isoDate.nullable().describe('A delayed task does not start before this time'),
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

export function toTaskView(row: TaskRow): TaskView {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    input: row.input,
    output: row.output ?? null,
    error: row.error ?? null,
    attemptErrors: row.attemptErrors,
    progress: row.progress ?? null,
    version: row.version,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    priority: row.priority,
    runAfter: iso(row.runAfter),
    cancelRequestedAt: iso(row.cancelRequestedAt),
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** What is published on every state change, and cached for finished tasks. No input: it may be large. */
export const taskEventSchema = taskViewSchema.omit({ input: true });
export type TaskEvent = z.output<typeof taskEventSchema>;

export function toTaskEvent(row: Omit<TaskRow, 'input'>): TaskEvent {
  const { input: _input, ...event } = toTaskView({ ...row, input: null });
  return event;
}
