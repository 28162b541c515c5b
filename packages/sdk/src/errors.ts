import type { TerminalStatus } from '@tasker/states';
import { TRPCClientError } from '@trpc/client';
import type { TaskError } from './types.ts';

/** Every error the SDK throws. */
export class TaskerError extends Error {
  override name = 'TaskerError';
  constructor(
    message: string,
    /** Tasker's error code: BAD_REQUEST, NOT_FOUND, SERVICE_UNAVAILABLE, ... */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface ValidationIssue {
  /** Dotted path of the offending field, e.g. `task_parameters.a`. */
  path: string;
  message: string;
  expected?: string;
}

/** The server refused the input: `issues` says which fields and why. */
export class TaskerValidationError extends TaskerError {
  override name = 'TaskerValidationError';
  constructor(
    message: string,
    readonly issues: ValidationIssue[],
    options?: { cause?: unknown },
  ) {
    super(message, 'BAD_REQUEST', options);
  }
}

/**
 * A submission refused because the queue of its tenant (or of its task type) is full: as many tasks
 * are PENDING as its `max_queued` limit allows. Nothing was stored; retrying at once will not help,
 * retry once some of the queued tasks have started. `code` is `QUEUE_FULL` (HTTP 429).
 */
export class TaskerQueueFullError extends TaskerError {
  override name = 'TaskerQueueFullError';
}

/**
 * A submission of a task type that calls a model, refused because its tenant reached an LLM budget
 * (`llmTokensPerDay`, `llmCostPerMonthUsd`; UTC windows). Nothing was stored; the HTTP answer's
 * Retry-After says when the window turns. `code` is `BUDGET_EXCEEDED` (HTTP 429).
 */
export class TaskerBudgetExceededError extends TaskerError {
  override name = 'TaskerBudgetExceededError';
}

/** No such task (or not yours). */
export class TaskerNotFoundError extends TaskerError {
  override name = 'TaskerNotFoundError';
}

/**
 * The server, or a dependency of it (PostgreSQL, Redis, the OpenAI key), is unavailable, or it could
 * not be reached (a network error, a proxy's 502/503/504). Idempotent calls have already been retried
 * (see the `retry` option): try again later.
 */
export class TaskerUnavailableError extends TaskerError {
  override name = 'TaskerUnavailableError';
}

/** The statuses a task ends in without a result: FAILED, CANCELLED or EXPIRED (from `@tasker/states`). */
export type UnsuccessfulStatus = Exclude<TerminalStatus, 'COMPLETED'>;

/** An unsuccessful end: the error's code, and how its message says it. */
interface Ending {
  code: string;
  words: (taskError: TaskError | null) => string;
}

const ENDINGS: Record<UnsuccessfulStatus, Ending> = {
  FAILED: { code: 'TASK_FAILED', words: (e) => `failed${e ? `: ${e.message}` : ''}` },
  CANCELLED: { code: 'CANCELLED', words: (e) => `was cancelled${e ? `: ${e.message}` : ''}` },
  EXPIRED: { code: 'EXPIRED', words: () => 'expired: not started within its ttl' },
};

/**
 * The task ended FAILED, CANCELLED or EXPIRED (not started within its ttl); `taskError` is what the
 * task recorded. `code` is `TASK_FAILED`, `CANCELLED` or `EXPIRED`.
 */
export class TaskFailedError extends TaskerError {
  override name = 'TaskFailedError';
  constructor(
    readonly taskId: string,
    readonly status: UnsuccessfulStatus,
    readonly taskError: TaskError | null,
  ) {
    // A status this version does not know (a newer server) reads as a failure.
    const ending = ENDINGS[status] ?? ENDINGS.FAILED;
    super(`task ${taskId} ${ending.words(taskError)}`, ending.code);
  }
}

/** Turns what the tRPC client throws into one of the classes above. */
export function toTaskerError(error: unknown): unknown {
  if (!(error instanceof TRPCClientError)) return error;
  const data = (error.data ?? {}) as { code?: string; issues?: ValidationIssue[] };
  const code = data.code ?? 'INTERNAL_SERVER_ERROR';
  if (code === 'BAD_REQUEST' && data.issues)
    return new TaskerValidationError(error.message, data.issues, { cause: error });
  if (code === 'NOT_FOUND') return new TaskerNotFoundError(error.message, code, { cause: error });
  if (code === 'QUEUE_FULL') return new TaskerQueueFullError(error.message, code, { cause: error });
  if (code === 'BUDGET_EXCEEDED') return new TaskerBudgetExceededError(error.message, code, { cause: error });
  if (!error.data) return new TaskerUnavailableError(error.message, 'SERVICE_UNAVAILABLE', { cause: error });
  if (code === 'SERVICE_UNAVAILABLE' || code === 'BAD_GATEWAY' || code === 'GATEWAY_TIMEOUT') {
    return new TaskerUnavailableError(error.message, code, { cause: error });
  }
  return new TaskerError(error.message, code, { cause: error });
}
