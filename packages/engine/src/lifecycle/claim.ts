import type { TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { expireOne } from './expire.ts';
import { emit, type LifecycleResources } from './resources.ts';

/**
 * Step 5 begins: a worker took the task's job and claims the row for attempt number `attempt`
 * (BullMQ's count, so that a delivery repeated after a crash or a lost database answer does not use
 * up an attempt): PENDING, or RUNNING left by a dead worker, becomes RUNNING.
 *
 * Undefined when the task must not run: it is finished (a job delivered again), its cancellation
 * was requested while no worker ran it (then it ends CANCELLED here), or it was not started within
 * its ttl (then it ends EXPIRED here, if the expiry sweep has not ended it yet).
 */
export async function claim(
  r: LifecycleResources,
  taskId: string,
  workerId: string,
  attempt: number,
): Promise<TaskRow | undefined> {
  const row = await r.store.claim(taskId, workerId, attempt);
  if (row) {
    emit(r, { kind: 'started', row });
    return row;
  }
  if (!(await endCancelled(r, taskId))) await expireOne(r, taskId);
  return undefined;
}

/**
 * Gives a running attempt back without counting it (graceful shutdown): RUNNING → PENDING. The
 * worker then hands the job back to the queue, and another worker (or this one, restarted) runs it.
 */
export async function release(r: LifecycleResources, taskId: string): Promise<TaskRow | undefined> {
  return r.store.release(taskId);
}
