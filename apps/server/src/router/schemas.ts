import { MAX_PRIORITY, type SubmitRequest } from '@tasker/engine';
import { z } from 'zod';

/** A task id in a route or input. */
export const taskUuid = z.uuid().describe('The id returned by run-task');

const DAY_MS = 24 * 3600 * 1000;

/** How a task is run, beside its type and parameters: the same options, in the same words, on every submit route. */
export const runOptionsShape = {
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
  ttl_ms: z
    .number()
    .int()
    .min(100)
    .max(30 * DAY_MS)
    .optional()
    .describe(
      "Not started within this many ms (counted from run_at/delay_ms, else from now), the task ends EXPIRED without running, also while paused (default: the task type's, else never)",
    ),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('The same key within IDEMPOTENCY_WINDOW_SECONDS returns the first task instead of a new one'),
};

const runOptions = z.object(runOptionsShape);
type RunOptions = z.output<typeof runOptions>;

/** The checks that span two run options (a `superRefine` of every submit input). */
export function checkRunOptions(value: Pick<RunOptions, 'delay_ms' | 'run_at'>, ctx: z.RefinementCtx): void {
  if (value.delay_ms !== undefined && value.run_at !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'give delay_ms or run_at, not both' });
  }
  if (value.run_at !== undefined && Date.parse(value.run_at) - Date.now() > 30 * DAY_MS) {
    ctx.addIssue({ code: 'custom', path: ['run_at'], message: 'must be within 30 days from now' });
  }
}

/** The run options as the engine takes them. */
export function toSubmitOptions(options: RunOptions): Omit<SubmitRequest, 'tenantId' | 'name' | 'input'> {
  return {
    priority: options.priority,
    delayMs: options.delay_ms,
    runAt: options.run_at ? new Date(options.run_at) : undefined,
    maxAttempts: options.max_attempts,
    timeoutMs: options.timeout_ms,
    ttlMs: options.ttl_ms,
    idempotencyKey: options.idempotency_key,
  };
}
