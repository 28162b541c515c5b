import { NonRetryableError } from './define.ts';

/** The longest a handler may sleep at once (`ctx.sleep`, `ctx.sleepUntil`): 30 days. */
export const MAX_SLEEP_MS = 30 * 24 * 3600 * 1000;
/** The longest step id, in characters. */
export const MAX_STEP_ID_LENGTH = 200;

/**
 * A run of a handler reached its steps in another order than a run before it recorded (a step id
 * where another was recorded, or a recorded step at another place): its recorded results cannot be
 * trusted for this code, so the task fails, without another attempt. Make the order of `ctx.step`
 * and `ctx.sleep` calls depend only on the input and on earlier steps' results.
 */
export class NonDeterminismError extends NonRetryableError {
  override name = 'NonDeterminismError';
}

/**
 * A step used in a way no attempt can fix: an empty or too long id, an id used twice in one run, a
 * result that is not JSON, a sleep longer than 30 days or not a number of milliseconds.
 */
export class InvalidStepError extends NonRetryableError {
  override name = 'InvalidStepError';
}

/** The shortest and longest timeout of a wait token (`ctx.createToken`, `ctx.waitForToken`). */
export const MIN_TOKEN_TIMEOUT_MS = 1000;
export const MAX_TOKEN_TIMEOUT_MS = MAX_SLEEP_MS;

/**
 * `ctx.waitForToken`: the token's timeout passed before anyone completed it. A handler may catch it
 * (and go on without the answer); uncaught, the task fails with it at once (another attempt would
 * find the same timed-out token).
 */
export class WaitTokenTimeoutError extends NonRetryableError {
  override name = 'WaitTokenTimeoutError';
  readonly code = 'TOKEN_TIMEOUT';
  constructor(
    readonly token: string,
    readonly timeoutAt: string,
  ) {
    super(`wait token ${token} timed out at ${timeoutAt} without a completion`);
  }
}

/** The status of a child task that did not complete. */
export type ChildFailureStatus = 'FAILED' | 'CANCELLED' | 'EXPIRED';

/** What a child task recorded as its error (its `error`). */
export interface ChildTaskFailure {
  message: string;
  name: string;
  code: string;
}

/**
 * `ctx.run`: the child task ended FAILED, CANCELLED or EXPIRED. The handler may catch it; uncaught,
 * the parent fails with it at once (another attempt would find the same child).
 */
export class ChildTaskError extends NonRetryableError {
  override name = 'ChildTaskError';
  readonly code = 'CHILD_TASK_FAILED';
  constructor(
    readonly childId: string,
    readonly status: ChildFailureStatus,
    readonly error: ChildTaskFailure | null,
  ) {
    super(`child task ${childId} ended ${status}${error ? `: ${error.message}` : ''}`);
  }
}

/**
 * `ctx.runMany`: at least one child did not complete. `failures` holds each one's ChildTaskError
 * with its place in the call; `outputs` every child's output in order (undefined where it failed).
 */
export class ChildTasksError extends NonRetryableError {
  override name = 'ChildTasksError';
  readonly code = 'CHILD_TASKS_FAILED';
  constructor(
    readonly failures: { index: number; error: ChildTaskError }[],
    readonly outputs: unknown[],
  ) {
    const first = failures[0]?.error.message ?? '';
    super(`${failures.length} of ${outputs.length} child tasks did not complete (first: ${first})`);
  }
}

/**
 * A child task beyond the bounds (CHILD_TASK_MAX_DEPTH levels below a top-level task,
 * CHILD_TASK_MAX_FAN_OUT per `ctx.runMany`), or a call no attempt can fix (no children, an unknown
 * type, bad options).
 */
export class ChildTaskLimitError extends NonRetryableError {
  override name = 'ChildTaskLimitError';
  readonly code = 'CHILD_TASK_LIMIT';
}
