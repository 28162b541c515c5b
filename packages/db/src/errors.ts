/**
 * Errors that say PostgreSQL could not be reached or dropped the connection (a restart, a crash, a
 * network cut), as opposed to errors in what was asked. Such an error says nothing about the task:
 * the same statement may succeed a moment later. drizzle wraps driver errors, so causes are walked.
 */
const UNAVAILABLE_CODES = new Set([
  // Node's socket errors
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  // postgres.js
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  // PostgreSQL: admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

/** Transient conflicts between transactions: the same statement succeeds when run again. */
const RETRYABLE_CODES = new Set(['40001', '40P01']);

function codes(error: unknown): string[] {
  const found: string[] = [];
  for (let cause = error, depth = 0; cause && typeof cause === 'object' && depth < 6; depth++) {
    const { code } = cause as { code?: unknown };
    if (typeof code === 'string') found.push(code);
    cause = (cause as { cause?: unknown }).cause;
  }
  return found;
}

/** PostgreSQL is down or the connection broke (SQLSTATE class 08 included). */
export function isDatabaseUnavailable(error: unknown): boolean {
  return codes(error).some((code) => UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}

/** Worth running again as it is: PostgreSQL unavailable, or a serialization failure or deadlock. */
export function isTransientDatabaseError(error: unknown): boolean {
  return isDatabaseUnavailable(error) || codes(error).some((code) => RETRYABLE_CODES.has(code));
}

/** A unique key was taken by another transaction's row (unique_violation, 23505). */
export function isUniqueViolation(error: unknown): boolean {
  return codes(error).includes('23505');
}

/**
 * A submission refused because its tenant (or its task type) already has `limit` tasks PENDING, its
 * `max_queued`: nothing was stored. The API answers 429 with code QUEUE_FULL.
 */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
  constructor(
    /** Whose limit: the tenant's, or the task type's (across every tenant). */
    readonly holder: 'tenant' | 'type',
    /** The tenant's id, or the task type's name. */
    readonly of: string,
    readonly limit: number,
  ) {
    super(
      holder === 'tenant'
        ? `Queue full: tenant "${of}" already has ${limit} queued (PENDING) tasks, its max_queued limit; retry once some have started`
        : `Queue full: task type "${of}" already has ${limit} queued (PENDING) tasks, its max_queued limit; retry once some have started`,
    );
  }
}
