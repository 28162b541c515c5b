import type { TaskError, TaskRow } from '@tasker/db';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

/** Rows one statement expires at most; `expireDue` repeats until fewer come back. */
const BATCH = 500;
/** At most this many batches per call: a huge backlog expires over several ticks. */
const BATCHES = 20;

/** What an expired task records as its error. */
export function expiredError(): TaskError {
  return {
    message: 'the task was not started within its ttl_ms',
    name: 'ExpiredError',
    code: 'EXPIRED',
    at: new Date().toISOString(),
  };
}

/** The end of an expired task, however it was found: announced, cached, its job removed. */
async function ended(r: LifecycleResources, row: TaskRow): Promise<void> {
  emit(r, { kind: 'finished', row });
  await bestEffort(r, 'result cache write', row.id, () => r.cache.put(row));
  await bestEffort(r, 'job removal', row.id, () => r.queue.remove(row.id));
}

/**
 * The `expire` transition: every PENDING task whose expires_at has passed ends EXPIRED, without
 * running: queued, delayed, waiting for a retry, or of a paused type (those hold no job, and are
 * found all the same: the row is the truth). Every worker calls this every EXPIRE_INTERVAL_MS; rows
 * another worker is expiring are skipped (SKIP LOCKED), so the calls never wait on each other.
 * Returns how many it expired.
 */
export async function expireDue(r: LifecycleResources): Promise<number> {
  let total = 0;
  for (let i = 0; i < BATCHES; i++) {
    const rows = await r.store.expireDue(BATCH, expiredError());
    for (const row of rows) await ended(r, row);
    total += rows.length;
    if (rows.length < BATCH) break;
  }
  return total;
}

/** Ends this task EXPIRED if it still may (PENDING, past its expiry): the claim found it so. */
export async function expireOne(r: LifecycleResources, id: string): Promise<TaskRow | undefined> {
  const [row] = await r.store.expire([id], expiredError());
  if (row) await ended(r, row);
  return row;
}
