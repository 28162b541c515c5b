import {
  TaskerError,
  TaskerNotFoundError,
  TaskerUnavailableError,
  TaskerValidationError,
  TaskFailedError,
} from '@tasker/sdk';
import type { TerminalStatus } from '@tasker/states';

/** The exit codes of `tasker`, as `tasker --help` lists them. */
export const EXIT = {
  ok: 0,
  /** The task ended FAILED or CANCELLED (run --wait/--watch, watch), or an unexpected error. */
  failed: 1,
  /** Bad usage, or input the server refused (400). */
  usage: 2,
  /** The server could not be reached, is unavailable (502/503/504), rate-limits or the queue is full (429). */
  unavailable: 3,
  /** No API key, or a key that is refused or lacks the scope (401/403). */
  auth: 4,
  /** No such task, or not possible in its state (404/409). */
  notFound: 5,
  /** The task ended EXPIRED: it was not started within its ttl (run --wait/--watch, watch). */
  expired: 6,
} as const;

/** The exit code of `run --wait`, `run --watch` and `watch` for a task that ended in `status`. */
const ENDED: Record<TerminalStatus, number> = {
  COMPLETED: EXIT.ok,
  FAILED: EXIT.failed,
  CANCELLED: EXIT.failed,
  EXPIRED: EXIT.expired,
};

export function exitCodeOf(status: TerminalStatus): number {
  return ENDED[status] ?? EXIT.failed;
}

export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  the task ended FAILED or CANCELLED (run --wait, run --watch, watch), or an unexpected error
  2  bad usage, or input the server refused (400): e.g. a parameter of the wrong type
  3  the server could not be reached, is unavailable (502/503/504), rate-limits (429), or the
     queue is full (429 QUEUE_FULL: the tenant's or the task type's max_queued); for migrate,
     PostgreSQL could not be reached
  4  not authenticated or not allowed (401/403): set TASKER_API_KEY or --api-key
  5  no such task (404), or not possible in its state (409)
  6  the task ended EXPIRED: not started within its ttl (run --wait, run --watch, watch)
Every failure prints one line on stderr, starting with "tasker: ".`;

/** A failure the CLI reports itself: one line, this exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The innermost cause's words (`connect ECONNREFUSED 127.0.0.1:5000` rather than `fetch failed`). */
function rootCause(error: unknown): string {
  let current: unknown = error;
  let message = error instanceof Error ? error.message : String(error);
  for (let depth = 0; depth < 5 && current instanceof Error && current.cause !== undefined; depth++) {
    current = current.cause;
    if (current instanceof Error && current.message) message = current.message;
  }
  return message;
}

/** What the SDK threw, as one line and an exit code. */
export function describeError(error: unknown, url: string): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof TaskFailedError) return new CliError(error.message, exitCodeOf(error.status));
  if (error instanceof TaskerValidationError) return new CliError(error.message, EXIT.usage);
  if (error instanceof TaskerNotFoundError) return new CliError(error.message, EXIT.notFound);
  if (error instanceof TaskerUnavailableError) {
    const data = (error.cause as { data?: unknown } | undefined)?.data;
    return data
      ? new CliError(`the server at ${url} is unavailable: ${error.message}`, EXIT.unavailable)
      : new CliError(`cannot reach the Tasker server at ${url}: ${rootCause(error)}`, EXIT.unavailable);
  }
  if (error instanceof TaskerError) {
    switch (error.code) {
      case 'UNAUTHORIZED':
      case 'FORBIDDEN':
        return new CliError(`${error.message} (${error.code === 'UNAUTHORIZED' ? 401 : 403})`, EXIT.auth);
      case 'BAD_REQUEST':
      case 'PAYLOAD_TOO_LARGE':
        return new CliError(error.message, EXIT.usage);
      case 'CONFLICT':
        return new CliError(error.message, EXIT.notFound);
      // A wait token that cannot be completed (409): completed already, timed out, its task finished.
      case 'TOKEN_ALREADY_COMPLETED':
      case 'TOKEN_TIMED_OUT':
      case 'TOKEN_TASK_FINISHED':
        return new CliError(`${error.message} (409 ${error.code})`, EXIT.notFound);
      case 'TOO_MANY_REQUESTS':
        return new CliError(`${error.message} (429): try again later`, EXIT.unavailable);
      case 'QUEUE_FULL':
        return new CliError(`${error.message} (429 QUEUE_FULL)`, EXIT.unavailable);
      default:
        return new CliError(`${error.message} (${error.code})`, EXIT.failed);
    }
  }
  return new CliError(error instanceof Error ? error.message : String(error), EXIT.failed);
}
