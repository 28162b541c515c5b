import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  gt,
  gte,
  inArray,
  isNotNull,
  lt,
  or,
  type SQL,
  sql,
} from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { Batcher } from './batcher.ts';
import type { Database, DbClient } from './client.ts';
import {
  type NewTaskRow,
  type TaskError,
  type TaskRow,
  type TaskStatus,
  TERMINAL_STATUSES,
  tasks,
  UNFINISHED_STATUSES,
} from './schema.ts';

/**
 * Characters of each payload's JSON text a listing reads from PostgreSQL (the API cuts the preview
 * further, to PREVIEW_BYTES of UTF-8): a page never carries whole inputs and outputs, and never
 * reads them out of the database either.
 */
export const LIST_HEAD_CHARS = 1024;

/**
 * A row as a listing reads it: the task without its payloads, with the first LIST_HEAD_CHARS
 * characters of each one's JSON text (PostgreSQL's rendering of the jsonb) and its whole size in
 * bytes; the error with its message cut the same way. The full row: `get`.
 */
export type TaskListRow = Omit<TaskRow, 'input' | 'output' | 'error' | 'attemptErrors' | 'progress'> & {
  inputHead: string;
  inputBytes: number;
  /** Null when the task has no output. */
  outputHead: string | null;
  outputBytes: number | null;
  error: TaskRow['error'];
};

export interface TaskListFilter {
  tenantId: string;
  statuses?: TaskStatus[];
  names?: string[];
  createdAfter?: Date;
  createdBefore?: Date;
  /**
   * Only tasks whose input contains this JSON value (`input @> value`: an object matches any input
   * holding at least its keys with those values, recursively; an array any input array holding its
   * elements; a scalar only itself). `undefined`: no condition.
   */
  inputContains?: unknown;
  /** Only tasks whose output contains this JSON value (`output @> value`); never a task without output. */
  outputContains?: unknown;
  /** The last row of the previous page. */
  cursor?: { createdAt: Date; id: string };
  limit: number;
}

export interface TaskStoreOptions {
  /** How long an idempotency key keeps answering with its first task. */
  idempotencyWindowSeconds: number;
}

/** A row that may need re-delivery: what the sweeper needs to rebuild its job. */
export type StaleTask = Pick<
  TaskRow,
  'id' | 'name' | 'status' | 'priority' | 'runAfter' | 'updatedAt' | 'maxAttempts'
>;

/**
 * Every read and write of task rows. State transitions are conditional updates, so that two
 * workers racing on one task can never both record a result.
 */
const columns = getTableColumns(tasks);
/**
 * A PostgreSQL array literal of texts ('{"a","b",NULL}'), cast in SQL to the element type wanted.
 * Written out here because postgres.js serialises array parameters only once it has fetched the
 * server's array types, which the first query on a new connection may not wait for.
 */
function pgArray(values: readonly (string | null | undefined)[]): string {
  const items = values.map((v) =>
    v == null ? 'NULL' : `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  return `{${items.join(',')}}`;
}

/** A row as postgres.js returns it from raw SQL (snake_case, driver values) → the drizzle row type. */
function fromDriver(raw: Record<string, unknown>): TaskRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(columns)) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as TaskRow;
}

/** Only this tenant's row, when a tenant is given (another tenant's task is as good as missing). */
const ofTenant = (tenantId: string | undefined) =>
  tenantId === undefined ? undefined : eq(tasks.tenantId, tenantId);

export class TaskStore {
  // The hot transitions are batched (see Batcher): concurrent calls share one statement and one
  // commit. Their SQL has a fixed text whatever the batch size (arrays + unnest), so postgres.js
  // prepares each once per connection.
  private readonly inserts: Batcher<NewTaskRow, { row: TaskRow; created: boolean }>;
  private readonly claims: Batcher<{ id: string; workerId: string; attempt: number }, TaskRow | undefined>;
  private readonly completions: Batcher<{ id: string; output: unknown }, TaskRow | undefined>;
  private readonly getById;
  private readonly db: Database;

  constructor(
    { db, sql: pg }: Pick<DbClient, 'db' | 'sql'>,
    private readonly options: TaskStoreOptions = { idempotencyWindowSeconds: 24 * 3600 },
  ) {
    this.db = db;
    this.getById = db
      .select()
      .from(tasks)
      .where(eq(tasks.id, sql.placeholder('id')))
      .limit(1)
      .prepare('tasks_get');
    const byId = (rows: readonly Record<string, unknown>[]) =>
      new Map(rows.map((raw) => [raw.id as string, fromDriver(raw)]));
    this.inserts = new Batcher(
      async (rows) => {
        const column = (f: (r: NewTaskRow) => unknown) =>
          pgArray(rows.map((r) => (f(r) == null ? null : String(f(r)))));
        const ids = column((r) => r.id);
        const owners = column((r) => r.tenantId ?? 'default');
        const names = column((r) => r.name);
        const inputs = column((r) => JSON.stringify(r.input ?? null));
        const maxAttempts = column((r) => r.maxAttempts ?? 1);
        const priorities = column((r) => r.priority ?? 0);
        const timeouts = column((r) => r.timeoutMs);
        const keys = column((r) => r.idempotencyKey);
        const runAfters = column((r) => r.runAfter?.toISOString());
        const keyed = rows.filter((r) => r.idempotencyKey != null);
        if (keyed.length > 0) {
          // A key older than the window is free again: detach it from the owner's old task first
          // (a change like any other: version and updated_at move, and it is announced).
          await pg`
            update tasks t set idempotency_key = null, version = t.version + 1, updated_at = now()
            from unnest(${pgArray(keyed.map((r) => r.tenantId ?? 'default'))}::text[],
                        ${pgArray(keyed.map((r) => r.idempotencyKey))}::text[]) as k(owner_id, key)
            where t.owner_id = k.owner_id and t.idempotency_key = k.key
              and t.created_at < now() - make_interval(secs => ${this.options.idempotencyWindowSeconds})`;
        }
        const inserted = byId(
          await pg`
            insert into tasks (id, owner_id, name, input, max_attempts, priority, timeout_ms, idempotency_key, run_after)
            select * from unnest(${ids}::uuid[], ${owners}::text[], ${names}::text[], ${inputs}::jsonb[],
              ${maxAttempts}::int[], ${priorities}::int[], ${timeouts}::int[], ${keys}::text[], ${runAfters}::timestamptz[])
            on conflict (owner_id, idempotency_key) where idempotency_key is not null do nothing
            returning *`,
        );
        // Rows that hit an existing key (also one inserted by another row of this batch): the task
        // that holds the key is the answer, as a replay.
        const replays = new Map<string, TaskRow>();
        const lost = keyed.filter((r) => !inserted.has(r.id));
        if (lost.length > 0) {
          const existing = await pg`
            select * from tasks
            where (owner_id, idempotency_key) in (
              select * from unnest(${pgArray(lost.map((r) => r.tenantId ?? 'default'))}::text[],
                                   ${pgArray(lost.map((r) => r.idempotencyKey))}::text[]))`;
          for (const raw of existing) {
            const row = fromDriver(raw);
            replays.set(`${row.tenantId}\u0000${row.idempotencyKey}`, row);
          }
        }
        return rows.map((r) => {
          const row = inserted.get(r.id);
          if (row) return { row, created: true };
          const replay = replays.get(`${r.tenantId ?? 'default'}\u0000${r.idempotencyKey}`);
          if (!replay) throw new Error(`insert returned no row for ${r.id}`);
          return { row: replay, created: false };
        });
      },
      (row) => row.id,
      { maxSize: 200 },
    );
    this.claims = new Batcher(
      async (items) => {
        const claimed = new Map<string, TaskRow>();
        for (const workerId of new Set(items.map((i) => i.workerId))) {
          const mine = items.filter((i) => i.workerId === workerId);
          const rows = await pg`
            update tasks t set status = 'RUNNING', version = t.version + 1, attempts = v.attempt, progress = null,
              started_at = coalesce(t.started_at, now()), updated_at = now(), worker_id = ${workerId}
            from unnest(${pgArray(mine.map((i) => i.id))}::uuid[], ${pgArray(mine.map((i) => String(i.attempt)))}::int[]) as v(id, attempt)
            where t.id = v.id and t.status in ('PENDING', 'RUNNING') and t.cancel_requested_at is null
            returning t.*`;
          for (const [id, row] of byId(rows)) claimed.set(id, row);
        }
        return items.map((i) => claimed.get(i.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
    this.completions = new Batcher(
      async (items) => {
        const completed = byId(
          await pg`
            update tasks t set status = 'COMPLETED', version = t.version + 1, output = v.output, error = null, finished_at = now(), updated_at = now()
            from unnest(${pgArray(items.map((i) => i.id))}::uuid[], ${pgArray(
              items.map((i) => JSON.stringify(i.output ?? null)),
            )}::jsonb[]) as v(id, output)
            where t.id = v.id and t.status = 'RUNNING' and t.cancel_requested_at is null
            returning t.*`,
        );
        return items.map((i) => completed.get(i.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
  }

  /**
   * Records a new task. With an idempotency key already used by this owner within the window, no
   * row is written: the existing task comes back with `created: false` (two racing inserts with one
   * key also end with one row).
   */
  insert(row: NewTaskRow): Promise<{ row: TaskRow; created: boolean }> {
    return this.inserts.add(row);
  }

  /** The task, if it exists (and belongs to `tenantId`, when given: another tenant's is not found). */
  async get(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    const [row] = await this.getById.execute({ id });
    return tenantId === undefined || row?.tenantId === tenantId ? row : undefined;
  }

  /** The current version of each of these rows (missing ids are left out): cheap change detection. */
  versions(ids: readonly string[]): Promise<{ id: string; version: number }[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db
      .select({ id: tasks.id, version: tasks.version })
      .from(tasks)
      .where(inArray(tasks.id, [...ids]));
  }

  /** Several rows by id (missing ids are left out). */
  getMany(ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.db
      .select()
      .from(tasks)
      .where(inArray(tasks.id, [...ids]));
  }

  /**
   * Claims the task for attempt number `attempt` (the queue's count, so that a delivery repeated
   * after a crash or a lost answer does not use up an attempt): PENDING (or RUNNING left by a dead
   * worker) becomes RUNNING. Undefined when the task is finished or its cancellation was requested.
   */
  claim(id: string, workerId: string, attempt: number): Promise<TaskRow | undefined> {
    return this.claims.add({ id, workerId, attempt });
  }

  /**
   * RUNNING → COMPLETED. Undefined when the task is no longer RUNNING (another delivery finished it)
   * or its cancellation was requested: a task whose cancel was recorded first never ends COMPLETED.
   */
  complete(id: string, output: unknown): Promise<TaskRow | undefined> {
    return this.completions.add({ id, output });
  }

  /**
   * Every change to a row goes through here: a conditional UPDATE (only from the states `from`
   * allows) that also bumps `version` and `updated_at`, so that watchers can order states.
   */
  private async transition(id: string, from: SQL | undefined, set: PgUpdateSetSource<typeof tasks>) {
    const [row] = await this.db
      .update(tasks)
      .set({ ...set, updatedAt: sql`now()`, version: sql`${tasks.version} + 1` })
      .where(and(eq(tasks.id, id), from))
      .returning();
    return row;
  }

  /**
   * Records a failed attempt. `final`: the task is FAILED with this error; otherwise it goes back to
   * PENDING to wait for its retry. Undefined when the task is no longer RUNNING.
   */
  async failAttempt(id: string, error: TaskError, final: boolean): Promise<TaskRow | undefined> {
    return this.transition(id, eq(tasks.status, 'RUNNING'), {
      status: final ? 'FAILED' : 'PENDING',
      error: final ? error : null,
      attemptErrors: sql`${tasks.attemptErrors} || ${JSON.stringify([error])}::jsonb`,
      finishedAt: final ? sql`now()` : null,
    });
  }

  /** Latest progress of a RUNNING task. */
  async setProgress(id: string, progress: unknown): Promise<TaskRow | undefined> {
    return this.transition(id, eq(tasks.status, 'RUNNING'), {
      progress: sql`${JSON.stringify(progress ?? null)}::jsonb`,
    });
  }

  /** PENDING (queued or delayed) → CANCELLED at once: it will never run. */
  async cancelPending(id: string, error: TaskError, tenantId?: string): Promise<TaskRow | undefined> {
    return this.transition(id, and(eq(tasks.status, 'PENDING'), ofTenant(tenantId)), {
      status: 'CANCELLED',
      error,
      cancelRequestedAt: sql`now()`,
      finishedAt: sql`now()`,
    });
  }

  /** RUNNING: records that it must stop; the worker running it aborts it and ends it CANCELLED. */
  async requestCancel(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    return this.transition(id, and(eq(tasks.status, 'RUNNING'), ofTenant(tenantId)), {
      cancelRequestedAt: sql`coalesce(${tasks.cancelRequestedAt}, now())`,
    });
  }

  /** The ids among these whose cancellation was requested (the worker's check on what it runs). */
  async cancelRequested(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .select({ id: tasks.id })
      .from(tasks)
      .where(and(inArray(tasks.id, [...ids]), isNotNull(tasks.cancelRequestedAt)));
    return rows.map((r) => r.id);
  }

  /** Ends as CANCELLED an unfinished task whose cancellation was requested. */
  async markCancelled(id: string, error: TaskError): Promise<TaskRow | undefined> {
    return this.transition(
      id,
      and(inArray(tasks.status, [...UNFINISHED_STATUSES]), isNotNull(tasks.cancelRequestedAt)),
      {
        status: 'CANCELLED',
        error,
        finishedAt: sql`now()`,
      },
    );
  }

  /**
   * FAILED or CANCELLED → PENDING again, same id, for a new round of attempts. The errors of the
   * earlier attempts stay in attempt_errors. Undefined when the task is not FAILED or CANCELLED.
   */
  async retry(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    const from = and(
      inArray(tasks.status, ['FAILED', 'CANCELLED'] satisfies TaskStatus[]),
      ofTenant(tenantId),
    );
    return this.transition(id, from, {
      status: 'PENDING',
      error: null,
      output: null,
      progress: null,
      attempts: 0,
      cancelRequestedAt: null,
      finishedAt: null,
      runAfter: null,
    });
  }

  /**
   * Deletes up to `limit` tasks that finished before `before` (one short statement: no long lock).
   * Returns how many it deleted; call again until it returns less than `limit`.
   */
  async pruneFinished(before: Date, limit: number): Promise<number> {
    const deleted = await this.db.execute(sql`
      delete from ${tasks} where ${tasks.id} in (
        select ${tasks.id} from ${tasks}
        where ${inArray(tasks.status, [...TERMINAL_STATUSES])} and ${tasks.finishedAt} < ${before.toISOString()}::timestamptz
        limit ${limit})`);
    return deleted.count;
  }

  /**
   * Vacuums (and analyzes) the tasks table when its dead rows pass `share` of its live ones (and at
   * least `minDead`). Every task leaves two or more dead row versions behind (no update of a task
   * can be HOT: status and updated_at are indexed), and a PostgreSQL whose autovacuum is off, or
   * behind, lets them pile up until every claim and every index scan slows down. Returns whether
   * it vacuumed. VACUUM takes no lock that stops reads or writes.
   */
  async vacuumIfBloated({ share = 0.2, minDead = 10_000 } = {}): Promise<boolean> {
    const [stats] = await this.db.execute<{ dead: number; live: number }>(sql`
      select n_dead_tup::int as dead, n_live_tup::int as live from pg_stat_user_tables where relid = 'tasks'::regclass`);
    if (!stats || stats.dead < Math.max(minDead, share * stats.live)) return false;
    await this.db.execute(sql`vacuum (analyze) ${tasks}`);
    return true;
  }

  /**
   * One page of an owner's tasks, newest first, after `cursor` (exclusive). Keyset pagination on
   * (created_at, id): every page costs the same, however deep (no OFFSET).
   */
  async list(filter: TaskListFilter): Promise<TaskListRow[]> {
    const conditions = [eq(tasks.tenantId, filter.tenantId)];
    if (filter.statuses?.length) conditions.push(inArray(tasks.status, filter.statuses));
    if (filter.names?.length) conditions.push(inArray(tasks.name, filter.names));
    if (filter.createdAfter) conditions.push(gte(tasks.createdAt, filter.createdAfter));
    if (filter.createdBefore) conditions.push(lt(tasks.createdAt, filter.createdBefore));
    // Containment, answered from the GIN indexes (tasks_input_idx, tasks_output_idx) when it is
    // selective; otherwise the planner walks the listing index and filters. Each query is planned
    // for its own value (plan_cache_mode = force_custom_plan, client.ts), which is what lets it tell
    // the two apart.
    if (filter.inputContains !== undefined)
      conditions.push(sql`${tasks.input} @> ${JSON.stringify(filter.inputContains)}::jsonb`);
    if (filter.outputContains !== undefined)
      conditions.push(sql`${tasks.output} @> ${JSON.stringify(filter.outputContains)}::jsonb`);
    if (filter.cursor) {
      conditions.push(
        sql`(${tasks.createdAt}, ${tasks.id}) < (${filter.cursor.createdAt.toISOString()}::timestamptz, ${filter.cursor.id}::uuid)`,
      );
    }
    // input is never null; output is, until the task completes.
    const head = <T extends string | null>(column: typeof tasks.input | typeof tasks.output) =>
      sql<T>`left(${column}::text, ${sql.raw(String(LIST_HEAD_CHARS))})`;
    const bytes = <T extends number | null>(column: typeof tasks.input | typeof tasks.output) =>
      sql<T>`octet_length(${column}::text)`.mapWith(Number);
    const cut = (field: 'message' | 'name' | 'code' | 'at', chars: number) =>
      sql`left(${tasks.error}->>${sql.raw(`'${field}'`)}, ${sql.raw(String(chars))})`;
    const {
      input: _i,
      output: _o,
      error: _e,
      attemptErrors: _a,
      progress: _p,
      ...fixed
    } = getTableColumns(tasks);
    return this.db
      .select({
        ...fixed,
        inputHead: head<string>(tasks.input),
        inputBytes: bytes<number>(tasks.input),
        outputHead: head<string | null>(tasks.output),
        outputBytes: bytes<number | null>(tasks.output),
        // The error with its strings cut: a handler's message may be as long as it likes.
        error: sql<
          TaskRow['error']
        >`case when ${tasks.error} is null then null else jsonb_strip_nulls(jsonb_build_object(
          'message', ${cut('message', LIST_HEAD_CHARS + 1)}, 'name', ${cut('name', 128)}, 'code', ${cut('code', 128)},
          'attempt', ${tasks.error}->'attempt', 'at', ${cut('at', 64)})) end`,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(desc(tasks.createdAt), desc(tasks.id))
      .limit(filter.limit);
  }

  /**
   * How many of an owner's tasks finished COMPLETED and FAILED in each minute since `since` (only
   * minutes with any). Walks `tasks_finished_idx` (finished tasks by `finished_at`): it reads the
   * rows finished since then, however many tasks are older.
   */
  async finishedPerMinute(
    tenantId: string,
    since: Date,
  ): Promise<{ minute: Date; status: 'COMPLETED' | 'FAILED'; count: number }[]> {
    const rows = await this.db.execute<{ minute: string; status: 'COMPLETED' | 'FAILED'; count: number }>(sql`
      select date_trunc('minute', ${tasks.finishedAt}) as minute, ${tasks.status} as status, count(*)::int as count
      from ${tasks}
      where ${inArray(tasks.status, [...TERMINAL_STATUSES])}
        and ${tasks.finishedAt} >= ${since.toISOString()}::timestamptz
        and ${tasks.tenantId} = ${tenantId}
        and ${tasks.status} in ('COMPLETED', 'FAILED')
      group by 1, 2`);
    return rows.map((row) => ({ minute: new Date(row.minute), status: row.status, count: row.count }));
  }

  /** Gives an attempt back without counting it (graceful shutdown): RUNNING → PENDING. */
  async release(id: string): Promise<TaskRow | undefined> {
    return this.transition(id, eq(tasks.status, 'RUNNING'), {
      status: 'PENDING',
      attempts: sql`greatest(${tasks.attempts} - 1, 0)`,
    });
  }

  /** Ends an unfinished task as FAILED from outside a worker (e.g. its job was lost for good). */
  async failUnfinished(id: string, error: TaskError): Promise<TaskRow | undefined> {
    return this.transition(id, inArray(tasks.status, [...UNFINISHED_STATUSES]), {
      status: 'FAILED',
      error,
      attemptErrors: sql`${tasks.attemptErrors} || ${JSON.stringify([error])}::jsonb`,
      finishedAt: sql`now()`,
    });
  }

  /** PENDING tasks of one type, oldest first, after the keyset `cursor`: what a resumed type enqueues. */
  pendingOfType(
    name: string,
    limit: number,
    cursor?: { createdAt: Date; id: string },
  ): Promise<Pick<TaskRow, 'id' | 'name' | 'priority' | 'runAfter' | 'maxAttempts' | 'createdAt'>[]> {
    const conditions = [eq(tasks.status, 'PENDING'), eq(tasks.name, name)];
    if (cursor) {
      conditions.push(
        sql`(${tasks.createdAt}, ${tasks.id}) > (${cursor.createdAt.toISOString()}::timestamptz, ${cursor.id}::uuid)`,
      );
    }
    return this.db
      .select({
        id: tasks.id,
        name: tasks.name,
        priority: tasks.priority,
        runAfter: tasks.runAfter,
        maxAttempts: tasks.maxAttempts,
        createdAt: tasks.createdAt,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(asc(tasks.createdAt), asc(tasks.id))
      .limit(limit);
  }

  /**
   * Unfinished rows that have not changed since `before`, oldest first, after the keyset
   * `cursor` (exclusive). Used by the sweeper to find tasks whose job may be missing.
   */
  async findStale(
    before: Date,
    limit: number,
    cursor?: { updatedAt: Date; id: string },
  ): Promise<StaleTask[]> {
    const conditions = [inArray(tasks.status, [...UNFINISHED_STATUSES]), lt(tasks.updatedAt, before)];
    if (cursor) {
      conditions.push(
        or(
          gt(tasks.updatedAt, cursor.updatedAt),
          and(eq(tasks.updatedAt, cursor.updatedAt), gt(tasks.id, cursor.id)),
        ) as ReturnType<typeof eq>,
      );
    }
    return this.db
      .select({
        id: tasks.id,
        name: tasks.name,
        status: tasks.status,
        priority: tasks.priority,
        runAfter: tasks.runAfter,
        updatedAt: tasks.updatedAt,
        maxAttempts: tasks.maxAttempts,
      })
      .from(tasks)
      .where(and(...conditions))
      .orderBy(asc(tasks.updatedAt), asc(tasks.id))
      .limit(limit);
  }
}
