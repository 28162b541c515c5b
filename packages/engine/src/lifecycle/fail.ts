import type { TaskError, TaskRow } from '@tasker/db';
import { cancelledError } from './cancel.ts';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

/**
 * An attempt failed (the handler threw, timed out, or returned an invalid result). One commit ends
 * it in its next status (the `failCancelled`, `failFinal` and `failRetry` transitions of
 * @tasker/states): CANCELLED when the task's cancellation was asked for meanwhile (never PENDING
 * first), FAILED with this error when `final` (no attempts left, or an error another attempt
 * cannot fix), else PENDING, waiting for the retry that the queue schedules with backoff. Every
 * attempt's error is kept in `attempt_errors`. Undefined when the task was no longer RUNNING.
 */
export async function fail(
  r: LifecycleResources,
  row: TaskRow,
  error: TaskError,
  final: boolean,
): Promise<TaskRow | undefined> {
  const failed = await r.store.fail({ id: row.id, error, cancelled: cancelledError(row.attempts), final });
  if (!failed) return undefined;
  const outcome =
    failed.status === 'PENDING' ? 'retrying' : failed.status === 'CANCELLED' ? 'cancelled' : 'failed';
  emit(r, { kind: 'attempt-ended', row, outcome });
  if (failed.status !== 'PENDING') emit(r, { kind: 'finished', row: failed });
  await bestEffort(r, 'result cache write', row.id, () => r.cache.put(failed));
  return failed;
}
