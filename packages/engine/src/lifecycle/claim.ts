import type { TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { expireOne } from './expire.ts';
import { emit, type LifecycleResources } from './resources.ts';

/** How far in the past a PENDING task's run_after may be and still explain a refused claim (clocks differ). */
const CLOCK_SKEW_MS = 60_000;

/**
 * What a claim found: the row, RUNNING for this attempt; or why there is nothing to run now.
 * `not-due`: the task is PENDING but may not start before `runAfter` (a debounced task whose start
 * moved after its job was delayed): its job waits until then and is delivered again.
 */
export type Claim =
  | { row: TaskRow; why?: undefined }
  | { row?: undefined; why: 'finished' | 'cancelled' | 'expired' }
  | { row?: undefined; why: 'not-due'; runAfter: Date };

/**
 * Step 5 begins: a worker took the task's job and claims the row for attempt number `attempt`
 * (BullMQ's count, so that a delivery repeated after a crash or a lost database answer does not use
 * up an attempt): PENDING, or RUNNING left by a dead worker, becomes RUNNING.
 *
 * No row when the task must not run now: it is finished (a job delivered again), its cancellation
 * was requested while no worker ran it (then it ends CANCELLED here), it was not started within
 * its ttl (then it ends EXPIRED here, if the expiry sweep has not ended it yet), or its run_after
 * has not come (`not-due`: the claim never starts a task early).
 */
export async function claim(
  r: LifecycleResources,
  taskId: string,
  workerId: string,
  attempt: number,
): Promise<Claim> {
  const row = await r.store.claim(taskId, workerId, attempt);
  if (row) {
    emit(r, { kind: 'started', row });
    return { row };
  }
  if (await endCancelled(r, taskId)) return { why: 'cancelled' };
  if (await expireOne(r, taskId)) return { why: 'expired' };
  const current = await r.store.get(taskId);
  const runAfter = current?.runAfter;
  if (current?.status === 'PENDING' && runAfter && runAfter.getTime() > Date.now() - CLOCK_SKEW_MS)
    return { why: 'not-due', runAfter };
  return { why: 'finished' };
}

/**
 * Gives a running attempt back without counting it (graceful shutdown): RUNNING → PENDING. The
 * worker then hands the job back to the queue, and another worker (or this one, restarted) runs it.
 */
export async function release(r: LifecycleResources, taskId: string): Promise<TaskRow | undefined> {
  return r.store.release(taskId);
}
