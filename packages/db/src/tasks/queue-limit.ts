import type postgres from 'postgres';
import { QueueFullError } from '../errors.ts';
import type { NewTaskRow } from '../schema.ts';

/**
 * The `max_queued` limits that apply to one submission: its tenant's and its task type's (PENDING
 * tasks of the type across every tenant). Null or absent: none.
 */
export interface MaxQueued {
  tenant?: number | null;
  type?: number | null;
}

/** Whether any limit applies (only then does an insert take the transactional path below). */
export const limitsQueue = (maxQueued: MaxQueued | undefined): maxQueued is MaxQueued =>
  maxQueued?.tenant != null || maxQueued?.type != null;

/**
 * One advisory lock per holder, both held until the transaction ends. Tenants and task types are
 * two namespaces of names; a tenant's lock is always taken before a type's, so two submissions
 * never wait for each other in a cycle.
 */
const lockKey = (holder: 'tenant' | 'type', name: string) => `tasker:max_queued:${holder}:${name}`;

/**
 * Inserts one task under its `max_queued` limits, or refuses it with a QueueFullError and stores
 * nothing. In one transaction: the advisory lock of its tenant (and of its type) when that has a
 * limit, so that racing submissions are counted one after the other; then the insert itself
 * (`insert`, the batch's own statement with a batch of one, so that idempotency keys and every
 * column behave exactly as in the batch); then, if a row was created, a count of the holder's
 * PENDING tasks, the new one included, that stops at limit + 1 (an index walk of
 * tasks_owner_status_created_idx for a tenant): over the limit, the transaction is rolled back.
 * A submission that creates nothing (an idempotent replay) is answered whatever the count.
 *
 * Only submissions with a limit come here: the unlimited ones keep the batched group commit.
 */
export function insertWithinQueueLimits<Row extends NewTaskRow, Answer extends { created: boolean }>(
  pg: postgres.Sql,
  row: Row,
  maxQueued: MaxQueued,
  insert: (sql: postgres.Sql, rows: readonly Row[]) => Promise<Answer[]>,
): Promise<Answer> {
  const tenantId = row.tenantId ?? 'default';
  return pg.begin(async (tx) => {
    if (maxQueued.tenant != null)
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockKey('tenant', tenantId)}, 0))`;
    if (maxQueued.type != null)
      await tx`select pg_advisory_xact_lock(hashtextextended(${lockKey('type', row.name)}, 0))`;
    // The transaction's connection runs the same statements as the pool (it lacks only begin/end).
    const [result] = await insert(tx as unknown as postgres.Sql, [row]);
    if (!result) throw new Error(`insert returned no row for ${row.id}`);
    if (!result.created) return result;
    if (maxQueued.tenant != null) {
      const [counted] = await tx<{ n: number }[]>`
        select count(*)::int as n from (
          select 1 from tasks where owner_id = ${tenantId} and status = 'PENDING' limit ${maxQueued.tenant + 1}) t`;
      if ((counted?.n ?? 0) > maxQueued.tenant)
        throw new QueueFullError('tenant', tenantId, maxQueued.tenant);
    }
    if (maxQueued.type != null) {
      const [counted] = await tx<{ n: number }[]>`
        select count(*)::int as n from (
          select 1 from tasks where name = ${row.name} and status = 'PENDING' limit ${maxQueued.type + 1}) t`;
      if ((counted?.n ?? 0) > maxQueued.type) throw new QueueFullError('type', row.name, maxQueued.type);
    }
    return result;
  }) as Promise<Answer>;
}
