import type { TaskError, TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

/**
 * An attempt failed (the handler threw, timed out, or returned an invalid result). `final` (no
 * attempts left, or an error another attempt cannot fix): RUNNING → FAILED with this error.
 * Otherwise RUNNING → PENDING, waiting for the retry that BullMQ schedules with backoff; a task
 * whose cancellation was requested meanwhile ends CANCELLED instead. Every attempt's error is kept
 * in `attempt_errors`. Undefined when the task was no longer RUNNING.
 */
export async function fail(
  r: LifecycleResources,
  row: TaskRow,
  error: TaskError,
  final: boolean,
): Promise<TaskRow | undefined> {
  const failed = await r.store.failAttempt(row.id, error, final);
  if (failed?.status === 'PENDING' && failed.cancelRequestedAt)
    return endCancelled(r, row.id, row.attempts, row);
  if (failed) {
    emit(r, { kind: 'attempt-ended', row, outcome: failed.status === 'FAILED' ? 'failed' : 'retrying' });
    if (failed.status === 'FAILED') emit(r, { kind: 'finished', row: failed });
  }
  if (failed) await bestEffort(r, 'result cache write', row.id, () => r.cache.put(failed));
  return failed;
}
