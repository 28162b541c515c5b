import { isUniqueViolation, type TaskRow } from '@tasker/db';
import { canRetry, listInWords, RETRYABLE_STATUSES } from '@tasker/states';
import { PublicFailureError } from '../errors/public-failure.ts';
import { TaskNotFoundError } from '../errors/task-not-found.ts';
import { TaskStateConflictError } from '../errors/task-state-conflict.ts';
import { bestEffort, type LifecycleResources, withTimeout } from './resources.ts';

/**
 * A retry by hand: a FAILED, CANCELLED or EXPIRED task goes back to PENDING under the same id, for
 * a new round of attempts (the errors of the earlier ones stay in `attempt_errors`), and waits for
 * its turn like a new task: the dispatcher hands it to the queue. Its cached final state is
 * dropped, and its old job removed first (BullMQ may still keep it, failed, and would ignore a new
 * job under that id); if that fails, the sweeper replaces a job left from an earlier round. Any
 * other status: TaskStateConflictError (409); a child task of it still unfinished: 409 CHILDREN_RUNNING
 * (rare: a parent's end cancels its children, but a running one takes a moment to stop); its
 * singleton_key held by another unfinished task: 409 SINGLETON_KEY_HELD, naming that task.
 */
export async function retry(r: LifecycleResources, id: string, tenantId?: string): Promise<TaskRow> {
  const current = await r.store.get(id, tenantId);
  if (!current) throw new TaskNotFoundError(id);
  if (canRetry(current)) {
    await bestEffort(r, 'old job removal (the sweeper replaces it later)', id, () =>
      withTimeout(r.queue.remove(id), 5000, 'remove'),
    );
  }
  const row = await r.store.retry(id, tenantId).catch((error: unknown) => {
    // Another retry took the key between this one's check and its write (the guard below).
    if (isUniqueViolation(error)) return undefined;
    throw error;
  });
  if (!row) {
    const now = await r.store.get(id, tenantId);
    const holder =
      now?.singletonKey != null && canRetry(now)
        ? await r.store.keyHolder(now.tenantId, 'singleton', now.singletonKey)
        : undefined;
    if (now && holder)
      throw new PublicFailureError({
        status: 409,
        code: 'SINGLETON_KEY_HELD',
        message: `Task is ${now.status} and its singleton_key is held by unfinished task ${holder}; retry it once that one has ended (or cancel it: POST /tasks/${holder}/cancel)`,
      });
    if (now && canRetry(now) && (await r.store.children.anyUnfinished(id)))
      throw new PublicFailureError({
        status: 409,
        code: 'CHILDREN_RUNNING',
        // Its end asked them to stop (the finishing trigger, 0033): what is left is a child still
        // stopping, or one that outlived an earlier version; each can be cancelled on its own.
        message: `Task is ${now.status} but child tasks of it have not ended yet; retry it once they have. Its end asked its unfinished children to stop (a running one stops within seconds); any still running can be cancelled itself (POST /tasks/{child}/cancel; GET /tasks/${id} lists them under childTasks)`,
      });
    throw new TaskStateConflictError(
      `Task is ${now?.status ?? current.status}; only a ${listInWords(RETRYABLE_STATUSES)} task can be retried`,
    );
  }
  await bestEffort(r, 'result cache drop', id, () => r.cache.drop(id));
  return row;
}
