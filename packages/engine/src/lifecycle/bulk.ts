import type { BulkOperationRow, TaskFilter, TaskRow } from '@tasker/db';
import { z } from 'zod';
import { taskStatusSchema } from '../view.ts';
import { cancelledError } from './cancel.ts';
import { bestEffort, emit, type LifecycleResources, withTimeout } from './resources.ts';

/**
 * An operation's filter as it is stored (`bulk_operations.filter`: the engine's filter as JSON,
 * dates as ISO text), read back. Every field of the store's `TaskFilter` but the tenant, which the
 * row carries beside it.
 */
const storedFilterShape = {
  statuses: z.array(taskStatusSchema).optional(),
  names: z.array(z.string()).optional(),
  createdAfter: z.coerce.date().optional(),
  createdBefore: z.coerce.date().optional(),
  inputContains: z.unknown().optional(),
  outputContains: z.unknown().optional(),
  tags: z.array(z.string()).optional(),
  metadataContains: z.record(z.string(), z.unknown()).optional(),
  parentId: z.uuid().optional(),
};
// A field added to TaskFilter and not read back here would be dropped by a resumed operation.
const everyFieldIsRead: [Exclude<keyof TaskFilter, 'tenantId' | keyof typeof storedFilterShape>] extends [
  never,
]
  ? true
  : false = true;
void everyFieldIsRead;
const storedFilterSchema = z.object(storedFilterShape);

/** The filter of an operation's row, for the store. Throws when the stored filter cannot be read. */
export function filterOf(op: Pick<BulkOperationRow, 'filter' | 'tenantId'>): TaskFilter {
  return { ...storedFilterSchema.parse(op.filter), tenantId: op.tenantId };
}

/** Whether a filter names anything: an empty one would act on every task of the tenant. */
export function isEmptyFilter(filter: Omit<TaskFilter, 'tenantId'>): boolean {
  return Object.values(filter).every(
    (value) => value === undefined || (Array.isArray(value) && value.length === 0),
  );
}

export interface BulkRunOptions {
  /** Tasks per chunk: per page read, per UPDATE, per transaction. */
  chunkSize: number;
  /** How long the runner holds the operation without a chunk (renewed by each). */
  leaseMs: number;
  /** Stops between chunks (the runner shuts down): the operation is given back, for another runner. */
  signal?: AbortSignal;
}

/** How a run ended: the operation finished (done or failed), or the runner let it go (stopped, lease lost). */
export type BulkRunEnd = { finished: BulkOperationRow } | { released: 'stopped' | 'lease lost' };

/**
 * Works through an operation `runner` holds (`store.bulk.take`), a chunk at a time, to its end. Each
 * chunk applies the action's transitions as the single cancel and retry do (`cancel.ts`,
 * `retry.ts`), with their guards, in one UPDATE per chunk, in the transaction that records the
 * progress; then, committed, the same side effects per task: for a cancel, the lifecycle event, the
 * result cache and the job's removal of each task ended CANCELLED, and the cancel signal of each
 * RUNNING one (its worker aborts it, or finds the request within WORKER_CANCEL_CHECK_MS); for a
 * retry, the old jobs removed first (best effort, as a single retry) and the cached results dropped.
 * Watchers and streams see every task change: each UPDATE moves the row's version, which
 * PostgreSQL announces on commit.
 */
export async function runBulk(
  r: LifecycleResources,
  op: BulkOperationRow,
  runner: string,
  { chunkSize, leaseMs, signal }: BulkRunOptions,
): Promise<BulkRunEnd> {
  let filter: TaskFilter;
  try {
    filter = filterOf(op);
  } catch (error) {
    const failed = await r.store.bulk.fail(
      op.id,
      runner,
      `its stored filter cannot be read: ${String(error)}`,
    );
    return failed ? { finished: failed } : { released: 'lease lost' };
  }
  const { tenantId } = op;
  // The operation as this runner last wrote it: its cursor moves only with this runner's chunks.
  let current = op;
  for (;;) {
    if (signal?.aborted) {
      await r.store.bulk.release(op.id, runner);
      return { released: 'stopped' };
    }
    // The page and a retry's job removals before the chunk's transaction: no queue call holds it open.
    const page = await r.store.bulk.page(current, filter, chunkSize);
    const ids = page.map((task) => task.id);
    if (op.action === 'retry') {
      // BullMQ keeps a failed job and would ignore a new one under its id (as retry.ts).
      await Promise.all(
        ids.map((id) =>
          bestEffort(r, 'old job removal (the sweeper replaces it later)', id, () =>
            withTimeout(r.queue.remove(id), 5000, 'remove'),
          ),
        ),
      );
    }
    const step = await r.store.bulk.chunk(op.id, runner, leaseMs, async (tx) => {
      if (page.length === 0) return { changed: 0, result: [] as Changed[] };
      const rows =
        op.action === 'cancel'
          ? await r.store.bulk.cancel(tx, tenantId, ids, cancelledError())
          : await r.store.bulk.retry(tx, tenantId, ids);
      return { changed: rows.length, last: page.at(-1), result: rows };
    });
    if (!step) return { released: 'lease lost' };
    current = step.op;
    await Promise.all(step.result.map((row) => afterChange(r, op.action, row)));
    if (step.op.status !== 'running') return { finished: step.op };
  }
}

/** A task a chunk changed; a cancelled one says whether it had been handed to the queue. */
type Changed = TaskRow & { handedOut?: boolean };

/** The side effects of one task's change, as the single cancel and retry make them. */
async function afterChange(
  r: LifecycleResources,
  action: BulkOperationRow['action'],
  row: Changed,
): Promise<void> {
  const { id } = row;
  if (action === 'retry') {
    await bestEffort(r, 'result cache drop', id, () => r.cache.drop(id));
    return;
  }
  if (row.status === 'CANCELLED') {
    emit(r, { kind: 'finished', row });
    await bestEffort(r, 'result cache write', id, () => r.cache.put(row));
    // Only a task handed to the queue has a job (a handout that commits after the cancel takes nothing).
    if (row.handedOut) await bestEffort(r, 'job removal', id, () => r.queue.remove(id));
    return;
  }
  if (!(await r.cancels.send(id).catch(() => false))) {
    r.log.warn({ taskId: id }, 'cancel signal not sent; the worker will see the request');
  }
}
