import type postgres from 'postgres';
import { QueueFullError } from '../errors.ts';
import type { TaskRow } from '../schema.ts';
import {
  againOnConflict,
  freeExpiredKeys,
  type HotOptions,
  type Inserted,
  insertRounds,
  KEY_COLUMNS,
  type TaskInsert,
} from './hot.ts';
import { lockKey } from './queue-limit.ts';
import { column, pgArray } from './rows.ts';

/**
 * One item's answer: its task's id, tenant and type (all a batch answers with and counts by: its
 * rows are not read back whole), created, or matched by a key and why.
 */
export type BatchInserted = Omit<Inserted, 'row'> & { row: Pick<TaskRow, 'id' | 'tenantId' | 'name'> };

/** The `max_queued` limits a batch is counted against as a whole: its tenant's, and each of its task types'. */
export interface BatchLimits {
  tenant?: number | null;
  /** By task type; a type absent (or null) has none. */
  types?: ReadonlyMap<string, number | null>;
}

/**
 * A batch of one tenant's new tasks (POST /tasks/batch), all or nothing: one transaction, whatever
 * its size (the same statements as the batched insert, `insertRounds`, so that idempotency and
 * singleton keys answer per item exactly as for a single submission, and every column is written
 * the same way). Under a `max_queued` (the tenant's, or one of its types'), the advisory locks of the
 * limited holders are taken first (the tenant's, then the types' by name: the order of
 * queue-limit.ts), and the PENDING count after the insert, stopped at limit + 1, refuses the whole
 * batch with a QueueFullError when it is past the limit: nothing is stored. Debounced rows are not
 * taken here (the API refuses them in a batch).
 */
export class BatchInserts {
  constructor(
    private readonly pg: postgres.Sql,
    private readonly options: HotOptions,
  ) {}

  /** The answers in the order of `rows`: each row's new task, or the task its key matched. */
  insert(rows: readonly TaskInsert[], limits: BatchLimits = {}): Promise<BatchInserted[]> {
    if (rows.length === 0) return Promise.resolve([]);
    const tenantId = rows[0]?.tenantId ?? 'default';
    if (rows.some((r) => (r.tenantId ?? 'default') !== tenantId))
      throw new Error('a batch holds the tasks of one tenant');
    if (rows.some((r) => r.debounceKey != null)) throw new Error('a batch takes no debounced task');
    // A deadlock's victim is run again whole (a statement of an aborted transaction cannot be).
    return againOnConflict(() => this.pg.begin((tx) => this.within(tx, tenantId, rows, limits)));
  }

  private async within(
    tx: postgres.TransactionSql,
    tenantId: string,
    rows: readonly TaskInsert[],
    limits: BatchLimits,
  ): Promise<BatchInserted[]> {
    // The transaction's connection runs the same statements as the pool (it lacks only begin/end).
    const sql = tx as unknown as postgres.Sql;
    const tenantLimit = limits.tenant ?? null;
    const names = new Set(rows.map((r) => r.name));
    const typeLimits = [...(limits.types ?? new Map<string, number | null>())]
      .filter((entry): entry is [string, number] => entry[1] != null && names.has(entry[0]))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const locks = [
      ...(tenantLimit === null ? [] : [lockKey('tenant', tenantId)]),
      ...typeLimits.map(([name]) => lockKey('type', name)),
    ];
    if (locks.length > 0) {
      await tx`select pg_advisory_xact_lock(hashtextextended(k.key, 0))
               from unnest(${pgArray(locks)}::text[]) with ordinality as k(key, n) order by k.n`;
    }
    await freeExpiredKeys(sql, rows, this.options);
    const answers = new Map<TaskInsert, Inserted>();
    await insertRounds(sql, rows, answers, (statement) => statement(), KEY_COLUMNS);
    const created = [...answers.values()].some((a) => a.created);
    if (locks.length > 0 && created) await this.check(tx, tenantId, tenantLimit, typeLimits);
    return rows.map((r) => {
      const answer = answers.get(r);
      if (!answer) throw new Error(`insert: no answer for ${r.id}`);
      const { id, tenantId, name } = answer.row;
      return { ...answer, row: { id, tenantId, name } };
    });
  }

  /** The PENDING counts after the insert, each stopped at its limit + 1: past one, the batch is refused. */
  private async check(
    tx: postgres.TransactionSql,
    tenantId: string,
    tenantLimit: number | null,
    typeLimits: readonly [string, number][],
  ): Promise<void> {
    if (tenantLimit !== null) {
      const [counted] = await tx<{ n: number }[]>`
        select count(*)::int as n from (select 1 from tasks where owner_id = ${tenantId} and status = 'PENDING'
          limit ${tenantLimit + 1}) t`;
      if ((counted?.n ?? 0) > tenantLimit) throw new QueueFullError('tenant', tenantId, tenantLimit);
    }
    if (typeLimits.length === 0) return;
    const counts = await tx<{ name: string; limit: number; n: number }[]>`
      select k.name, k.lim as limit,
        (select count(*)::int from (select 1 from tasks where name = k.name and status = 'PENDING' limit k.lim + 1) t) as n
      from unnest(${column(typeLimits, ([name]) => name)}::text[], ${column(typeLimits, ([, limit]) => limit)}::int[]) as k(name, lim)`;
    const over = counts.find((c) => c.n > c.limit);
    if (over) throw new QueueFullError('type', over.name, over.limit);
  }
}
