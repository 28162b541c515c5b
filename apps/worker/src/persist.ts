import { isTransientDatabaseError } from '@tasker/db';
import type { Logger } from '@tasker/engine';

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 2000;

/**
 * Runs a bookkeeping write until PostgreSQL takes it. A database outage is not the task's fault: it
 * must neither cost the task an attempt nor fail it, and a handler that finished must never run
 * again because its result could not be written. So a transient error (connection lost, database
 * restarting) is retried with backoff for as long as it lasts; meanwhile the job stays active (its
 * BullMQ lock is renewed) and the worker takes no more than its concurrency, which pauses it in
 * effect. Gives up only when `until` fires (shutdown), by throwing the last error.
 */
export async function persist<T>(
  what: string,
  write: () => Promise<T>,
  { log, taskId, until }: { log: Logger; taskId: string; until?: AbortSignal },
): Promise<T> {
  let delay = FIRST_DELAY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isTransientDatabaseError(error) || until?.aborted) throw error;
      if (attempt === 1 || attempt % 10 === 0)
        log.warn({ taskId, err: error, attempt }, `${what}: PostgreSQL unavailable, retrying`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
}
