/**
 * A handler's retryable error may say how long its task should wait before the next attempt (a
 * provider's `retry-after`): a number of milliseconds in its `retryAfterMs`. The worker's backoff
 * (`@tasker/engine`, `backoffStrategy`) uses it instead of the task type's backoff.
 */

/** The longest wait an error may ask for; a longer `retry-after` (or a date far ahead) is cut to it. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** A retryable failure that asks for its next attempt no sooner than `retryAfterMs` from now. */
export class RetryAfterError extends Error {
  override name = 'RetryAfterError';
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

/**
 * The wait `error` asks for, within 0..MAX_RETRY_AFTER_MS, or undefined. Read from the property,
 * not by `instanceof`: the error may come from another copy of this module (a bundle).
 */
export function retryAfterOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('retryAfterMs' in error)) return undefined;
  const ms = error.retryAfterMs;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return undefined;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)));
}

/**
 * What an HTTP answer's `retry-after-ms` (milliseconds; OpenAI's) or `retry-after` (seconds, or an
 * HTTP date) asks for, in milliseconds from `now`; undefined when neither is there or readable.
 * The same reading as the `openai` package's own retry loop (which is not exported).
 */
export function retryAfterFromHeaders(
  headers: { get(name: string): string | null } | undefined,
  now = Date.now(),
): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number.parseFloat(ms))) return Math.max(0, Number.parseFloat(ms));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = Number(value.trim());
  if (value.trim() !== '' && Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
