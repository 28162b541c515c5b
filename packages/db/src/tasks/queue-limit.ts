import type postgres from 'postgres';
import { QueueFullError } from '../errors.ts';
import type { NewTaskRow } from '../schema.ts';
import { pgArray } from './rows.ts';

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
export const lockKey = (holder: 'tenant' | 'type', name: string) => `tasker:max_queued:${holder}:${name}`;

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
    const tenantLimit = maxQueued.tenant ?? null;
    const typeLimit = maxQueued.type ?? null;
    // The locks of the limited holders in one statement, the tenant's first (so two submissions
    // never wait for each other in a cycle).
    const locks = [
      ...(tenantLimit === null ? [] : [lockKey('tenant', tenantId)]),
      ...(typeLimit === null ? [] : [lockKey('type', row.name)]),
    ];
    await tx`select pg_advisory_xact_lock(hashtextextended(k.key, 0))
             from unnest(${pgArray(locks)}::text[]) with ordinality as k(key, n) order by k.n`;
    // The transaction's connection runs the same statements as the pool (it lacks only begin/end).
    const [result] = await insert(tx as unknown as postgres.Sql, [row]);
    if (!result) throw new Error(`insert returned no row for ${row.id}`);
    if (!result.created) return result;
    // Both counts in one statement, each stopped at its limit + 1.
    const [counted] = await tx<{ tenant: number; type: number }[]>`
      select
        (select count(*)::int from (select 1 from tasks where ${tenantLimit}::int is not null
           and owner_id = ${tenantId} and status = 'PENDING' limit coalesce(${tenantLimit}::int, 0) + 1) t) as tenant,
        (select count(*)::int from (select 1 from tasks where ${typeLimit}::int is not null
           and name = ${row.name} and status = 'PENDING' limit coalesce(${typeLimit}::int, 0) + 1) t) as type`;
    if (tenantLimit !== null && (counted?.tenant ?? 0) > tenantLimit)
      throw new QueueFullError('tenant', tenantId, tenantLimit);
    if (typeLimit !== null && (counted?.type ?? 0) > typeLimit)
      throw new QueueFullError('type', row.name, typeLimit);
    return result;
  }) as Promise<Answer>;
}
