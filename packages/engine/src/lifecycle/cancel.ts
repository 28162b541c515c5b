import type { TaskError, TaskRow } from '@tasker/db';
import { TaskNotFoundError } from '../errors/task-not-found.ts';
import { TaskStateConflictError } from '../errors/task-state-conflict.ts';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

/** What a cancelled task records as its error (the old route shows it as FAILED with this message). */
export function cancelledError(attempt?: number): TaskError {
  return {
    message: 'the task was cancelled',
    name: 'CancelledError',
    code: 'CANCELLED',
    ...(attempt === undefined ? {} : { attempt }),
    at: new Date().toISOString(),
  };
}

/**
 * What happens when a task is cancelled.
 *
 * - PENDING (queued, delayed, or waiting for a retry): CANCELLED at once in PostgreSQL, and its job
 *   removed (if that fails, the worker that takes the job finds the row finished and drops it).
 *   WAITING (its handler slept) the same: it has no job, and never resumes.
 * - RUNNING: the request is recorded (`cancel_requested_at`): from then on the task can only end
 *   CANCELLED. A signal goes to every worker, and the one running the task aborts the handler's
 *   AbortSignal at once; if the signal is lost, that worker finds the recorded request within
 *   `WORKER_CANCEL_CHECK_MS` (`CancelWatch`). Then `endCancelled` below.
 * - A handler that returns in the same instant: whichever commits first wins. A result committed
 *   before the request makes the task COMPLETED and the cancel a 409; a request committed before the
 *   result makes the task CANCELLED and the result is dropped (`complete` refuses a row with a
 *   recorded request).
 * - Finished: TaskStateConflictError (409). Unknown, or another tenant's: TaskNotFoundError (404).
 */
export async function cancel(r: LifecycleResources, id: string, tenantId?: string): Promise<TaskRow> {
  // Each transition is scoped to the tenant: another tenant's task is not found, like an unknown id.
  const pending = await r.store.cancelPending(id, cancelledError(), tenantId);
  if (pending) {
    emit(r, { kind: 'finished', row: pending });
    await bestEffort(r, 'result cache write', id, () => r.cache.put(pending));
    await bestEffort(r, 'job removal', id, () => r.queue.remove(id));
    await signalChildren(r, id);
    return pending;
  }
  const running = await r.store.requestCancel(id, tenantId);
  if (running) {
    if (!(await r.cancels.send(id))) {
      r.log.warn(
        { taskId: id },
        'cancel signal not sent (Redis unavailable); the worker will see the request',
      );
    }
    return running;
  }
  const row = await r.store.get(id, tenantId);
  if (!row) throw new TaskNotFoundError(id);
  throw new TaskStateConflictError(
    `Task is already ${row.status}; only a PENDING, RUNNING or WAITING task can be cancelled`,
  );
}

/**
 * A cancelled task's children were cancelled in its commit (the finishing trigger, migration 0027):
 * a PENDING or WAITING one ended CANCELLED, a RUNNING one got its cancel request, which its worker
 * finds within WORKER_CANCEL_CHECK_MS; the signal makes that at once.
 */
async function signalChildren(r: LifecycleResources, id: string): Promise<void> {
  await bestEffort(r, "children's cancel signals", id, async () => {
    for (const child of await r.store.children.cancelling(id)) await r.cancels.send(child);
  });
}

/**
 * The end of a cancellation: an unfinished task whose cancel was requested becomes CANCELLED.
 * Undefined when there is nothing to end (no request, or already finished). `running`: the row as
 * its running attempt claimed it, when an attempt is what ends here.
 */
export async function endCancelled(
  r: LifecycleResources,
  id: string,
  attempt?: number,
  running?: TaskRow,
): Promise<TaskRow | undefined> {
  const cancelled = await r.store.cancelRunning(id, cancelledError(attempt));
  if (cancelled) {
    if (running) emit(r, { kind: 'attempt-ended', row: running, outcome: 'cancelled' });
    emit(r, { kind: 'finished', row: cancelled });
  }
  if (cancelled) {
    await bestEffort(r, 'result cache write', id, () => r.cache.put(cancelled));
    await signalChildren(r, id);
  }
  return cancelled;
}
