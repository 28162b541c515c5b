import type { TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { emit, type LifecycleResources } from './resources.ts';

/**
 * Step 5 begins: a worker took the task's job and claims the row for attempt number `attempt`
 * (BullMQ's count, so that a delivery repeated after a crash or a lost database answer does not use
 * up an attempt): PENDING, or RUNNING left by a dead worker, becomes RUNNING.
 *
 * Undefined when the task must not run: it is finished (a job delivered again), or its cancellation
 * was requested while no worker ran it (then it ends CANCELLED here).
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
  await endCancelled(r, taskId);
  return undefined;
}

/**
 * Gives a running attempt back without counting it (graceful shutdown): RUNNING → PENDING. The
 * worker then hands the job back to the queue, and another worker (or this one, restarted) runs it.
 */
export async function release(r: LifecycleResources, taskId: string): Promise<TaskRow | undefined> {
  return r.store.release(taskId);
}
