import { TRANSITIONS, type TransitionName } from '@tasker/states';
import {
  and,
  count,
  desc,
  eq,
  getTableColumns,
  inArray,
  isNull,
  lt,
  lte,
  or,
  type SQL,
  sql,
} from 'drizzle-orm';
import type { Database } from '../client.ts';
import {
  type BulkAction,
  type BulkOperationRow,
  bulkOperations,
  type TaskError,
  type TaskRow,
  type TaskStatus,
  tasks,
} from '../schema.ts';
import { createdAtOf } from './id-time.ts';
import { type TaskFilter, taskFilterConditions } from './queries.ts';
import { pgArray } from './rows.ts';
import { afterCursor, earlier, readStepped, timeWindows, windowConditions } from './time-steps.ts';
import { conditionOf, statusAfter } from './transition-sql.ts';
import { RETRY_SET } from './transitions.ts';

/** A transaction of `Database` (a chunk's statements and its progress commit together). */
type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];
type Executor = Database | Transaction;

/** The transitions each action applies, per row, from @tasker/states. */
const ACTION_TRANSITIONS: Record<BulkAction, readonly TransitionName[]> = {
  cancel: ['cancelPending', 'requestCancel'],
  retry: ['retry'],
};

/** The statuses an action can change: its transitions' `from` together. */
export function actionStatuses(action: BulkAction): TaskStatus[] {
  return [...new Set(ACTION_TRANSITIONS[action].flatMap((name) => TRANSITIONS[name].from))];
}

/** A position in an operation's walk: newest first, on (created_at, id). */
/** A task a bulk cancel changed, and whether it had been handed to the queue (its job exists). */
export type BulkCancelled = TaskRow & { handedOut: boolean };

export interface BulkCursor {
  createdAt: Date;
  id: string;
}

/**
 * The tasks an action may change among a filter's, made no later than `until` (the operation's
 * creation: a task submitted after it is not touched), after `cursor` in the walk.
 */
function actionable(filter: TaskFilter, action: BulkAction, until: SQL | Date, cursor?: BulkCursor): SQL[] {
  const conditions = [
    ...taskFilterConditions(filter),
    inArray(tasks.status, actionStatuses(action)),
    lte(tasks.createdAt, until instanceof Date ? until : sql`${until}`),
  ];
  if (cursor) {
    conditions.push(
      sql`(${tasks.createdAt}, ${tasks.id}) < (${cursor.createdAt.toISOString()}::timestamptz, ${cursor.id}::uuid)`,
    );
  }
  return conditions;
}

/** What a chunk of an operation did: how many tasks it changed, and where the walk stands now. */
export interface ChunkWork<T> {
  changed: number;
  /** The last task the chunk read; undefined: nothing was left, the operation is done. */
  last?: BulkCursor;
  result: T;
}

export interface NewBulkOperation {
  id: string;
  tenantId: string;
  action: BulkAction;
  /** The filter as given, stored as it is (JSON). */
  filter: unknown;
  createdBy: string | null;
}

/**
 * Bulk actions over a tenant's tasks (`bulk_operations`, migration 0020): the operations' rows
 * (create, take over, a chunk, finish, release) and the task statements of a chunk (a page of ids,
 * then one UPDATE over them applying the action's transitions with their guards, per row). No
 * statement reads or changes more than one chunk of tasks.
 */
export class BulkOperations {
  constructor(private readonly db: Database) {}

  /** How many of the filter's tasks the action would change now (a dry run; an operation's `matched`). */
  async count(filter: TaskFilter, action: BulkAction): Promise<number> {
    const [row] = await this.db
      .select({ n: count() })
      .from(tasks)
      .where(and(...actionable(filter, action, sql`now()`)));
    return row?.n ?? 0;
  }

  /** Records a new operation, running, with its `matched` count, in one transaction (one `now()`). */
  create(op: NewBulkOperation, filter: TaskFilter): Promise<BulkOperationRow> {
    return this.db.transaction(async (tx) => {
      const [counted] = await tx
        .select({ n: count() })
        .from(tasks)
        .where(and(...actionable(filter, op.action, sql`now()`)));
      const [row] = await tx
        .insert(bulkOperations)
        .values({ ...op, matched: counted?.n ?? 0, createdAt: sql`now()`, updatedAt: sql`now()` })
        .returning();
      if (!row) throw new Error('insert returned no row');
      return row;
    });
  }

  /** The operation, if it exists (and belongs to `tenantId`, when given). */
  async get(id: string, tenantId?: string): Promise<BulkOperationRow | undefined> {
    const [row] = await this.db
      .select()
      .from(bulkOperations)
      .where(
        and(
          eq(bulkOperations.id, id),
          tenantId === undefined ? undefined : eq(bulkOperations.tenantId, tenantId),
        ),
      );
    return row;
  }

  /**
   * Takes the oldest running operation that no one holds (new, or its runner's lease ran out: the
   * runner died), for `leaseMs`; undefined when there is none. Two takers never get the same one.
   */
  async take(runner: string, leaseMs: number): Promise<BulkOperationRow | undefined> {
    const free = this.db
      .select({ id: bulkOperations.id })
      .from(bulkOperations)
      .where(
        and(
          eq(bulkOperations.status, 'running'),
          or(isNull(bulkOperations.leaseUntil), lt(bulkOperations.leaseUntil, sql`now()`)),
        ),
      )
      .orderBy(bulkOperations.createdAt)
      .limit(1)
      .for('update', { skipLocked: true });
    const [row] = await this.db
      .update(bulkOperations)
      .set({ runner, leaseUntil: sql`now() + ${leaseMs} * interval '1 millisecond'`, updatedAt: sql`now()` })
      .where(and(inArray(bulkOperations.id, free), eq(bulkOperations.status, 'running')))
      .returning();
    return row;
  }

  /**
   * One chunk of an operation `runner` holds, in one transaction: the operation's row is locked (a
   * runner that lost its lease gets undefined, and nothing is changed), `work` makes the chunk's
   * changes, then the row records them: `done` grows by what changed, the cursor moves to the last
   * task read and the lease is renewed; or, when `work` found nothing left, the operation is done.
   */
  chunk<T>(
    id: string,
    runner: string,
    leaseMs: number,
    work: (tx: Transaction, op: BulkOperationRow) => Promise<ChunkWork<T>>,
  ): Promise<{ op: BulkOperationRow; result: T } | undefined> {
    return this.db.transaction(async (tx) => {
      const [op] = await tx
        .select()
        .from(bulkOperations)
        .where(
          and(
            eq(bulkOperations.id, id),
            eq(bulkOperations.runner, runner),
            eq(bulkOperations.status, 'running'),
          ),
        )
        .for('update');
      if (!op) return undefined;
      const { changed, last, result } = await work(tx, op);
      const [next] = await tx
        .update(bulkOperations)
        .set({
          done: sql`${bulkOperations.done} + ${changed}`,
          updatedAt: sql`now()`,
          ...(last
            ? {
                cursorCreatedAt: last.createdAt,
                cursorId: last.id,
                leaseUntil: sql`now() + ${leaseMs} * interval '1 millisecond'`,
              }
            : { status: 'done' as const, finishedAt: sql`now()`, runner: null, leaseUntil: null }),
        })
        .where(eq(bulkOperations.id, id))
        .returning();
      if (!next) throw new Error('update returned no row');
      return { op: next, result };
    });
  }

  /** Ends an operation `runner` holds as failed, with what went wrong. */
  async fail(id: string, runner: string, error: string): Promise<BulkOperationRow | undefined> {
    const [row] = await this.db
      .update(bulkOperations)
      .set({
        status: 'failed',
        error,
        finishedAt: sql`now()`,
        updatedAt: sql`now()`,
        runner: null,
        leaseUntil: null,
      })
      .where(
        and(
          eq(bulkOperations.id, id),
          eq(bulkOperations.runner, runner),
          eq(bulkOperations.status, 'running'),
        ),
      )
      .returning();
    return row;
  }

  /** Gives a running operation back (its runner stops): the next taker goes on from its cursor. */
  async release(id: string, runner: string): Promise<void> {
    await this.db
      .update(bulkOperations)
      .set({ runner: null, leaseUntil: null, updatedAt: sql`now()` })
      .where(
        and(
          eq(bulkOperations.id, id),
          eq(bulkOperations.runner, runner),
          eq(bulkOperations.status, 'running'),
        ),
      );
  }

  /**
   * The next chunk of an operation's tasks: at most `limit`, newest first, after its cursor. Read
   * outside the chunk's transaction: only the operation's holder moves its cursor.
   */
  page(op: BulkOperationRow, filter: TaskFilter, limit: number): Promise<BulkCursor[]> {
    const cursor =
      op.cursorCreatedAt && op.cursorId ? { createdAt: op.cursorCreatedAt, id: op.cursorId } : undefined;
    // In steps of time (time-steps.ts), from the cursor or the operation's creation (created_at <= it).
    const top = earlier(afterCursor({ createdAt: op.createdAt }), afterCursor(cursor));
    return readStepped(timeWindows(top, filter.createdAfter), limit, (window, rest) =>
      this.db
        .select({ createdAt: tasks.createdAt, id: tasks.id })
        .from(tasks)
        .where(and(...actionable(filter, op.action, op.createdAt, cursor), ...windowConditions(window)))
        .orderBy(desc(tasks.createdAt), desc(tasks.id))
        .limit(rest),
    );
  }

  /**
   * Cancels these tasks of the tenant, each as a single cancel would, in one UPDATE: a PENDING or
   * WAITING task ends CANCELLED at once (`cancelPending`), a RUNNING one gets its request recorded
   * (`requestCancel`: its worker ends it). The choice is made per row on the row as the UPDATE locks
   * it, so a task that started (or went back to PENDING) since the page was read gets the right one.
   * Returns the changed rows: CANCELLED, or RUNNING with `cancelRequestedAt`; each says whether it
   * was handed to the queue (a job to remove: read before the trigger deletes a finished task's
   * handout at the statement's end).
   */
  cancel(tx: Executor, tenantId: string, ids: readonly string[], error: TaskError): Promise<BulkCancelled[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const pending = conditionOf('cancelPending', tenantId);
    const cancelled = statusAfter('cancelPending');
    return tx
      .update(tasks)
      .set({
        status: sql`case when ${pending} then ${cancelled}::task_status else ${tasks.status} end`,
        error: sql`case when ${pending} then ${JSON.stringify(error)}::jsonb else ${tasks.error} end`,
        cancelRequestedAt: sql`case when ${pending} then now() else coalesce(${tasks.cancelRequestedAt}, now()) end`,
        finishedAt: sql`case when ${pending} then now() else ${tasks.finishedAt} end`,
        waitingFor: sql`case when ${pending} then null else ${tasks.waitingFor} end`,
        updatedAt: sql`now()`,
        version: sql`${tasks.version} + 1`,
      })
      .where(
        and(
          inArray(tasks.id, [...ids]),
          createdAtOf(ids),
          or(pending, conditionOf('requestCancel', tenantId)),
        ),
      )
      .returning({
        ...getTableColumns(tasks),
        handedOut: sql<boolean>`exists (select from task_handouts h where h.task_id = ${tasks.id})`,
      });
  }

  /**
   * Retries these tasks of the tenant (FAILED, CANCELLED, EXPIRED → PENDING), as a single retry
   * does. Of tasks sharing a singleton key, only the newest: it takes the key, and the retry's
   * guard (singletonKeyFree) reads the keys as they were before the statement, so a second one
   * would meet the key in its own statement (a unique violation that failed the whole chunk).
   */
  retry(tx: Executor, tenantId: string, ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const newestOfItsKey = sql`(select c.id from ${tasks} c
      where c.id = any(${pgArray(ids)}::uuid[]) and c.owner_id = ${tasks.tenantId}
        and c.singleton_key = ${tasks.singletonKey}
      order by c.created_at desc, c.id desc limit 1)`;
    return tx
      .update(tasks)
      .set({
        ...RETRY_SET,
        status: statusAfter('retry'),
        updatedAt: sql`now()`,
        version: sql`${tasks.version} + 1`,
      })
      .where(
        and(
          inArray(tasks.id, [...ids]),
          createdAtOf(ids),
          conditionOf('retry', tenantId),
          or(isNull(tasks.singletonKey), eq(tasks.id, newestOfItsKey)),
        ),
      )
      .returning();
  }
}
