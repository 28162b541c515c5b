import { UNFINISHED_STATUSES } from '@tasker/states';
import type postgres from 'postgres';
import { Batcher, ItemFailure } from '../batcher.ts';
import { isDatabaseUnavailable, isTransientDatabaseError } from '../errors.ts';
import type { NewTaskRow, TaskError, TaskRow } from '../schema.ts';
import { andCreatedAt, CREATED_AT, createdMs, refuseClockSkew } from './id-time.ts';
import { insertWithinQueueLimits, limitsQueue, type MaxQueued } from './queue-limit.ts';
import { byId, column, fromDriver, pgArray } from './rows.ts';
import { choiceText, conditionText, sharedFromText } from './transition-sql.ts';

export interface HotOptions {
  /** How long an idempotency key keeps answering with its first task. */
  idempotencyWindowSeconds: number;
}

/** How one insert is made. */
export interface InsertOptions {
  /** The `max_queued` limits of its tenant and its type: with one, it is counted (queue-limit.ts). */
  maxQueued?: MaxQueued;
}

/** A new task, as `insert` takes it: its row, and for a debounced submission its delay. */
export type TaskInsert = NewTaskRow & {
  /**
   * With `debounceKey`: the task starts this many ms after the last submission with the key
   * (run_after = the database's clock at the write + delay). Ignored without a debounce key.
   */
  debounceDelayMs?: number;
};

/** What `insert` did. */
export interface Inserted {
  /** The new task; or, when none was created, the task that answers instead (see `matched`). */
  row: TaskRow;
  created: boolean;
  /**
   * Why no task was created, when none was:
   * - `idempotency`: the owner's task with this idempotency key (within the window), unchanged;
   * - `singleton`: the owner's unfinished task (PENDING or RUNNING) with this singleton key, unchanged;
   * - `debounce`: the owner's PENDING task with this debounce key, now with this submission's input,
   *   start and options (version + 1). If that task is of another type (`row.name`), nothing was
   *   written: a debounce key collapses submissions of one type.
   */
  matched?: 'idempotency' | 'singleton' | 'debounce';
}

/** A failed attempt, as `fail` records it. */
export interface FailedAttempt {
  id: string;
  /** The attempt's error: appended to attempt_errors; the task's error when it ends FAILED. */
  error: TaskError;
  /** The task's error when a cancellation was asked for meanwhile (it ends CANCELLED instead). */
  cancelled: TaskError;
  /** No attempt follows (none left, or an error no attempt can fix). */
  final: boolean;
}

// The conditions and choices of the hot statements, from the state machine (constant text, so that
// each statement keeps one text whatever the batch and postgres.js prepares it once per connection).
const CLAIM = conditionText('claim');
const COMPLETE = conditionText('complete');
const FAIL = sharedFromText(['failCancelled', 'failFinal', 'failRetry']);
/** failCancelled wins over failFinal (a cancel asked for wins, as it does over a result), then failRetry. */
const FAIL_TO = choiceText([
  { name: 'failCancelled' },
  { name: 'failFinal', when: 'v.final' },
  { name: 'failRetry' },
]);

/**
 * The transitions every task goes through (insert, claim, complete, fail), batched: concurrent calls
 * share one statement and one commit (see Batcher), with arrays and unnest.
 */
export class HotTransitions {
  private readonly inserts: Batcher<TaskInsert, Inserted>;
  private readonly debounces: Batcher<TaskInsert, Inserted>;
  private readonly insertLimited: (row: TaskInsert, maxQueued: MaxQueued) => Promise<Inserted>;
  private readonly claims: Batcher<{ id: string; workerId: string; attempt: number }, TaskRow | undefined>;
  private readonly completions: Batcher<{ id: string; output: unknown }, TaskRow | undefined>;
  private readonly failures: Batcher<FailedAttempt, TaskRow | undefined>;

  constructor(pg: postgres.Sql, options: HotOptions) {
    // Plain and debounced submissions go in batches of their own: one failing never fails the other.
    this.inserts = new Batcher(
      (rows) => insertPlain(pg, rows, options),
      (row) => row.id,
      { maxSize: 200 },
    );
    this.debounces = new Batcher(
      (rows) => upsertDebounced(pg, rows),
      (row) => row.id,
      { maxSize: 200 },
    );
    this.insertLimited = (row, maxQueued) =>
      insertWithinQueueLimits(pg, row, maxQueued, async (tx, rows) => {
        const [answer] = await (row.debounceKey == null
          ? insertPlain(tx, rows, options)
          : upsertDebounced(tx, rows));
        if (!answer || answer instanceof ItemFailure)
          throw answer?.error ?? new Error(`no answer for ${row.id}`);
        return [answer];
      });
    this.claims = new Batcher(
      async (items) => {
        const claimed = new Map<string, TaskRow>();
        for (const workerId of new Set(items.map((i) => i.workerId))) {
          const mine = items.filter((i) => i.workerId === workerId);
          const rows = await pg`
            update tasks t set status = 'RUNNING', version = t.version + 1, attempts = v.attempt, progress = null,
              started_at = coalesce(t.started_at, now()), updated_at = now(), worker_id = ${workerId}
            from unnest(${column(mine, (i) => i.id)}::uuid[], ${column(mine, (i) => i.attempt)}::int[]) as v(id, attempt)
            where t.id = v.id ${andCreatedAt(
              pg,
              't',
              mine.map((i) => i.id),
            )} and ${pg.unsafe(CLAIM)}
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
            update tasks t set status = 'COMPLETED', version = t.version + 1, output = v.output, error = null,
              finished_at = now(), updated_at = now()
            from unnest(${column(items, (i) => i.id)}::uuid[], ${column(items, (i) => JSON.stringify(i.output ?? null))}::jsonb[]) as v(id, output)
            where t.id = v.id ${andCreatedAt(
              pg,
              't',
              items.map((i) => i.id),
            )} and ${pg.unsafe(COMPLETE)}
            returning t.*`,
        );
        return items.map((i) => completed.get(i.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
    this.failures = new Batcher(
      async (items) => {
        // One statement ends each attempt in its one next status: CANCELLED (a cancel was asked for),
        // FAILED (final) or PENDING (a retry follows). Every SET below reads the same old row.
        const failed = byId(
          await pg`
            update tasks t set status = ${pg.unsafe(FAIL_TO)}, version = t.version + 1, updated_at = now(),
              error = case ${pg.unsafe(FAIL_TO)} when 'CANCELLED' then v.cancelled when 'FAILED' then v.error else null end,
              attempt_errors = t.attempt_errors || jsonb_build_array(v.error),
              finished_at = case ${pg.unsafe(FAIL_TO)} when 'PENDING' then null else now() end
            from unnest(${column(items, (i) => i.id)}::uuid[], ${column(items, (i) => JSON.stringify(i.error))}::jsonb[],
                        ${column(items, (i) => JSON.stringify(i.cancelled))}::jsonb[], ${column(items, (i) => i.final)}::bool[])
              as v(id, error, cancelled, final)
            where t.id = v.id ${andCreatedAt(
              pg,
              't',
              items.map((i) => i.id),
            )} and ${pg.unsafe(FAIL)}
            returning t.*`,
        );
        return items.map((i) => failed.get(i.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
  }

  /**
   * Records a new task. With an idempotency key already used by this owner within the window, or a
   * singleton key held by one of the owner's unfinished tasks, no row is written: that task comes
   * back with `created: false`. With a debounce key held by one of the owner's PENDING tasks, that
   * task takes this submission's input and start instead. Racing inserts with one key (from any
   * number of processes) end with one task: the unique indexes decide (see `Inserted`). Under a
   * `max_queued` limit, a submission is inserted on its own and counted, or refused with a
   * QueueFullError and nothing stored (queue-limit.ts).
   */
  insert(row: TaskInsert, options: InsertOptions = {}): Promise<Inserted> {
    if (limitsQueue(options.maxQueued)) return this.insertLimited(row, options.maxQueued);
    return row.debounceKey == null ? this.inserts.add(row) : this.debounces.add(row);
  }

  /**
   * Claims the task for attempt number `attempt` (the queue's count, so that a delivery repeated
   * after a crash or a lost answer does not use up an attempt): PENDING (or RUNNING left by a dead
   * worker) becomes RUNNING. Undefined when the task is finished, its cancellation was requested,
   * or it expired.
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
   * Ends a failed attempt of a RUNNING task, in one commit: CANCELLED if its cancellation was asked
   * for (never PENDING first), else FAILED when `final`, else PENDING for its retry. The attempt's
   * error joins attempt_errors in every case. Undefined when the task is no longer RUNNING.
   */
  fail(attempt: FailedAttempt): Promise<TaskRow | undefined> {
    return this.failures.add(attempt);
  }
}

const UNFINISHED = UNFINISHED_STATUSES.map((status) => `'${status}'`).join(', ');
/** A key held by another row of the batch, or by a task that ended meanwhile: the insert is tried again, this often at most. */
const KEY_ROUNDS = 5;

const ownerOf = (r: NewTaskRow) => r.tenantId ?? 'default';
/** A row's tags as one array literal (an element of a text[] parameter, cast to text[] in SQL). */
const tagsOf = (r: NewTaskRow) => pgArray(r.tags ?? []);
/** A row's metadata as JSON text, or null (none). */
const metadataOf = (r: NewTaskRow) => (r.metadata == null ? null : JSON.stringify(r.metadata));

/**
 * Runs a statement again when PostgreSQL chose it as a deadlock's (or a serialization failure's)
 * victim: nothing of it was written, and run again it goes through. Concurrent batches with the
 * same keys take their locks in one order (the statements sort their rows), so this is rare.
 */
export async function againOnConflict<T>(statement: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (error) {
      const conflict = isTransientDatabaseError(error) && !isDatabaseUnavailable(error);
      if (!conflict || attempt === 3) throw error;
    }
  }
}

/**
 * The answers of a batch whose rounds stopped on an error: the rows answered before it keep their
 * answer (they are committed), the others fail with the error. Nothing answered: the error itself.
 */
function answered<T>(
  rows: readonly TaskInsert[],
  answers: Map<TaskInsert, T>,
  error: unknown,
): (T | ItemFailure)[] {
  if (answers.size === 0) throw error;
  return rows.map((r) => answers.get(r) ?? new ItemFailure(error));
}
const keyOf = (owner: string, key: string | null | undefined) => `${owner}\u0000${key}`;

/**
 * New rows, unless an idempotency or singleton key of the owner answers instead: one INSERT ... ON
 * CONFLICT DO NOTHING (any unique index: the idempotency key's, the singleton key's), then the holder
 * of each key that refused a row is read. A singleton key whose holder finished between the two is
 * free again: that row is inserted in the next round.
 */
async function insertPlain(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
  options: HotOptions,
): Promise<(Inserted | ItemFailure)[]> {
  await freeExpiredKeys(pg, rows, options);
  const answers = new Map<TaskInsert, Inserted>();
  try {
    await insertRounds(pg, rows, answers);
  } catch (error) {
    return answered(rows, answers, error);
  }
  return rows.map((r) => answers.get(r) as Inserted);
}

/**
 * A key older than the window is free again: detached from the owner's old task before the insert
 * (a change like any other: version and updated_at move, and it is announced).
 */
export async function freeExpiredKeys(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
  options: HotOptions,
): Promise<void> {
  const keyed = rows.filter((r) => r.idempotencyKey != null);
  if (keyed.length === 0) return;
  await pg`
    update tasks t set idempotency_key = null, version = t.version + 1, updated_at = now()
    from unnest(${column(keyed, (r) => r.tenantId ?? 'default')}::text[],
                ${column(keyed, (r) => r.idempotencyKey)}::text[]) as k(owner_id, key)
    where t.owner_id = k.owner_id and t.idempotency_key = k.key
      and t.created_at < now() - make_interval(secs => ${options.idempotencyWindowSeconds})`;
}

/** The columns `insertRounds` needs at least: a task's id, owner and type, and its keys. */
export const KEY_COLUMNS = 'id, owner_id, name, idempotency_key, singleton_key';

/**
 * The rounds of `insertPlain` (and of a batch, `batch.ts`, inside its transaction), each answer
 * recorded in `answers` as soon as its statement is done.
 */
export async function insertRounds(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
  answers: Map<TaskInsert, Inserted>,
  // Inside a transaction a statement cannot be run again after an error: the caller retries it whole.
  attempt: <T>(statement: () => Promise<T>) => Promise<T> = againOnConflict,
  // The columns read back (the new rows, the keys' holders): the whole row, or a batch's few
  // (KEY_COLUMNS; the answers' other fields are then null).
  columns = '*',
): Promise<void> {
  let todo = rows;
  for (let round = 0; todo.length > 0; round++) {
    if (round === KEY_ROUNDS)
      throw new Error(`insert: no answer for ${todo.length} task(s) after ${round} rounds`);
    // expires_at counts from when the task may first start (run_after, else now). The concurrency
    // key is the tenant's when none is given.
    // Rows sorted by their keys, so that concurrent batches take the keys' locks in one order.
    // Without a key among them (most batches), a row can meet no unique index but the primary key
    // (its id, made by the server) and the plain INSERT spares each row ON CONFLICT's speculative
    // insertion (a probe of every unique index first, then a speculative lock).
    const keyed = todo.some((r) => r.idempotencyKey != null || r.singletonKey != null);
    const inserted = byId(
      await attempt(() =>
        pg`
        insert into tasks (id, owner_id, name, input, max_attempts, priority, timeout_ms, idempotency_key, run_after, ttl_ms,
                           concurrency_key, singleton_key, trace, expires_at, tags, metadata, webhook_url, parent_id, llm_cache_ttl_ms,
                           created_at)
        select v.id, v.owner_id, v.name, v.input, v.max_attempts, v.priority, v.timeout_ms, v.idempotency_key, v.run_after, v.ttl_ms,
               coalesce(v.concurrency_key, v.owner_id), v.singleton_key, v.trace,
               case when v.ttl_ms is null then null
                    else coalesce(v.run_after, now()) + v.ttl_ms * interval '1 millisecond' end,
               v.tags::text[], v.metadata, v.webhook_url, v.parent_id, v.llm_cache_ttl_ms, ${pg.unsafe(CREATED_AT)}
        from unnest(${column(todo, (r) => r.id)}::uuid[], ${column(todo, ownerOf)}::text[],
          ${column(todo, (r) => r.name)}::text[], ${column(todo, (r) => JSON.stringify(r.input ?? null))}::jsonb[],
          ${column(todo, (r) => r.maxAttempts ?? 1)}::int[], ${column(todo, (r) => r.priority ?? 0)}::int[],
          ${column(todo, (r) => r.timeoutMs)}::int[], ${column(todo, (r) => r.idempotencyKey)}::text[],
          ${column(todo, (r) => (r.runAfter instanceof Date ? r.runAfter.toISOString() : r.runAfter))}::timestamptz[],
          ${column(todo, (r) => r.ttlMs)}::int[], ${column(todo, (r) => r.concurrencyKey)}::text[],
          ${column(todo, (r) => r.singletonKey)}::text[], ${column(todo, (r) => (r.trace ? JSON.stringify(r.trace) : null))}::jsonb[],
          ${column(todo, tagsOf)}::text[], ${column(todo, metadataOf)}::jsonb[], ${column(todo, (r) => r.webhookUrl)}::text[],
          ${column(todo, (r) => r.parentId)}::uuid[], ${column(todo, (r) => r.llmCacheTtlMs)}::int[],
          ${column(todo, createdMs)}::bigint[])
          as v(id, owner_id, name, input, max_attempts, priority, timeout_ms, idempotency_key, run_after, ttl_ms,
               concurrency_key, singleton_key, trace, tags, metadata, webhook_url, parent_id, llm_cache_ttl_ms, created_ms)
        order by v.owner_id, v.singleton_key, v.idempotency_key
        ${keyed ? pg`on conflict do nothing` : pg``}
        returning ${pg.unsafe(columns)}`.catch(refuseClockSkew),
      ),
    );
    for (const r of todo) {
      const row = inserted.get(r.id);
      if (row) answers.set(r, { row, created: true });
    }
    // Rows that hit an existing key (also one inserted by another row of this batch): the task that
    // holds the key is the answer. An idempotency key first (a replay), then a singleton key.
    const lost = todo.filter((r) => !inserted.has(r.id));
    if (lost.length === 0) break;
    const replays = new Map<string, TaskRow>();
    const replayable = lost.filter((r) => r.idempotencyKey != null);
    if (replayable.length > 0) {
      const existing = await pg`
        select ${pg.unsafe(columns)} from tasks
        where (owner_id, idempotency_key) in (
          select * from unnest(${pgArray(replayable.map(ownerOf))}::text[],
                               ${pgArray(replayable.map((r) => r.idempotencyKey))}::text[]))`;
      for (const raw of existing) {
        const row = fromDriver(raw);
        replays.set(keyOf(row.tenantId, row.idempotencyKey), row);
      }
    }
    const singletons = new Map<string, TaskRow>();
    const single = lost.filter(
      (r) =>
        r.singletonKey != null &&
        (r.idempotencyKey == null || !replays.has(keyOf(ownerOf(r), r.idempotencyKey))),
    );
    if (single.length > 0) {
      const holders = await pg`
        select ${pg.unsafe(columns)} from tasks
        where (owner_id, singleton_key) in (
          select * from unnest(${pgArray(single.map(ownerOf))}::text[],
                               ${pgArray(single.map((r) => r.singletonKey))}::text[]))
          and status in (${pg.unsafe(UNFINISHED)})`;
      for (const raw of holders) {
        const row = fromDriver(raw);
        singletons.set(keyOf(row.tenantId, row.singletonKey), row);
      }
    }
    const again: TaskInsert[] = [];
    for (const r of lost) {
      const replay = r.idempotencyKey == null ? undefined : replays.get(keyOf(ownerOf(r), r.idempotencyKey));
      const holder = r.singletonKey == null ? undefined : singletons.get(keyOf(ownerOf(r), r.singletonKey));
      if (replay) answers.set(r, { row: replay, created: false, matched: 'idempotency' });
      else if (holder) answers.set(r, { row: holder, created: false, matched: 'singleton' });
      else again.push(r); // its key's holder ended meanwhile: the key is free
    }
    todo = again;
  }
}

/**
 * Debounced submissions: each (owner, debounce key) has at most one PENDING task (a unique index).
 * An upsert on it either creates that task or moves it: the newest input, options and start
 * (run_after = the database's clock + delay, taken when the row is written, so the last write to
 * commit sets the start). Submissions of one batch with one key are one write, the last one's (the
 * others joined it); one of another type than that last one waits for the next statement. A holder
 * that stopped being PENDING meanwhile frees the key: the write is tried again.
 */
async function upsertDebounced(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
): Promise<(Inserted | ItemFailure)[]> {
  const answers = new Map<TaskInsert, Inserted>();
  try {
    await debounceRounds(pg, rows, answers);
  } catch (error) {
    return answered(rows, answers, error);
  }
  return rows.map((r) => answers.get(r) as Inserted);
}

/** The statements of `upsertDebounced`, each answer recorded in `answers` once committed. */
async function debounceRounds(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
  answers: Map<TaskInsert, Inserted>,
): Promise<void> {
  let pending = [...rows];
  while (pending.length > 0) {
    // One write per key and statement: ON CONFLICT DO UPDATE cannot touch a row twice in one.
    const writers = new Map<string, TaskInsert>();
    for (const r of pending) writers.set(keyOf(ownerOf(r), r.debounceKey), r);
    const written = await writeDebounced(pg, [...writers.values()]);
    const later: TaskInsert[] = [];
    for (const r of pending) {
      const writer = writers.get(keyOf(ownerOf(r), r.debounceKey)) as TaskInsert;
      const answer = written.get(writer) as Inserted;
      if (writer === r) answers.set(r, answer);
      else if (writer.name === r.name)
        answers.set(r, { row: answer.row, created: false, matched: 'debounce' });
      else later.push(r);
    }
    pending = later;
  }
}

/** The upsert of `upsertDebounced`, for rows of distinct keys. */
async function writeDebounced(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
): Promise<Map<TaskInsert, Inserted>> {
  const byKey = new Map<string, Inserted>();
  let todo = rows;
  for (let round = 0; todo.length > 0; round++) {
    if (round === KEY_ROUNDS)
      throw new Error(`insert: no answer for ${todo.length} debounced task(s) after ${round} rounds`);
    const written = await againOnConflict(() =>
      pg`
      insert into tasks as t (id, owner_id, name, input, max_attempts, priority, timeout_ms, run_after, ttl_ms, expires_at,
                              concurrency_key, debounce_key, trace, tags, metadata, webhook_url, llm_cache_ttl_ms, created_at)
      select v.id, v.owner_id, v.name, v.input, v.max_attempts, v.priority, v.timeout_ms, v.start, v.ttl_ms,
             case when v.ttl_ms is null then null else v.start + v.ttl_ms * interval '1 millisecond' end,
             coalesce(v.concurrency_key, v.owner_id), v.debounce_key, v.trace, v.tags::text[], v.metadata, v.webhook_url,
             v.llm_cache_ttl_ms, ${pg.unsafe(CREATED_AT)}
      from (
        select u.*, clock_timestamp() + u.delay_ms * interval '1 millisecond' as start
        from unnest(${column(todo, (r) => r.id)}::uuid[], ${column(todo, ownerOf)}::text[],
          ${column(todo, (r) => r.name)}::text[], ${column(todo, (r) => JSON.stringify(r.input ?? null))}::jsonb[],
          ${column(todo, (r) => r.maxAttempts ?? 1)}::int[], ${column(todo, (r) => r.priority ?? 0)}::int[],
          ${column(todo, (r) => r.timeoutMs)}::int[], ${column(todo, (r) => r.ttlMs)}::int[],
          ${column(todo, (r) => r.concurrencyKey)}::text[], ${column(todo, (r) => r.debounceKey)}::text[],
          ${column(todo, (r) => r.debounceDelayMs ?? 0)}::int[], ${column(todo, (r) => (r.trace ? JSON.stringify(r.trace) : null))}::jsonb[],
          ${column(todo, tagsOf)}::text[], ${column(todo, metadataOf)}::jsonb[], ${column(todo, (r) => r.webhookUrl)}::text[],
          ${column(todo, (r) => r.llmCacheTtlMs)}::int[], ${column(todo, createdMs)}::bigint[])
          as u(id, owner_id, name, input, max_attempts, priority, timeout_ms, ttl_ms, concurrency_key, debounce_key, delay_ms, trace,
               tags, metadata, webhook_url, llm_cache_ttl_ms, created_ms)
      ) v
      order by v.owner_id, v.debounce_key
      on conflict (owner_id, debounce_key) where debounce_key is not null and status = 'PENDING'
      do update set input = excluded.input, run_after = excluded.run_after, ttl_ms = excluded.ttl_ms,
        expires_at = excluded.expires_at, priority = excluded.priority, max_attempts = excluded.max_attempts,
        timeout_ms = excluded.timeout_ms, concurrency_key = excluded.concurrency_key,
        tags = excluded.tags, metadata = excluded.metadata, webhook_url = excluded.webhook_url,
        llm_cache_ttl_ms = excluded.llm_cache_ttl_ms, version = t.version + 1, updated_at = now()
      where t.status = 'PENDING' and t.name = excluded.name
      returning t.*, t.xmax = 0 as created`.catch(refuseClockSkew),
    );
    for (const raw of written) {
      const row = fromDriver(raw);
      const created = raw.created === true;
      byKey.set(
        keyOf(row.tenantId, row.debounceKey),
        created ? { row, created } : { row, created, matched: 'debounce' },
      );
    }
    // No row back: the holder is of another type (it answers, nothing was written), or it stopped
    // being PENDING between the conflict and the update (the key is free: again).
    const missing = todo.filter((r) => !byKey.has(keyOf(ownerOf(r), r.debounceKey)));
    if (missing.length === 0) break;
    const holders = await pg`
      select * from tasks
      where (owner_id, debounce_key) in (
        select * from unnest(${pgArray(missing.map(ownerOf))}::text[],
                             ${pgArray(missing.map((r) => r.debounceKey))}::text[]))
        and status = 'PENDING'`;
    const wanted = new Map(missing.map((r) => [keyOf(ownerOf(r), r.debounceKey), r.name]));
    for (const raw of holders) {
      const row = fromDriver(raw);
      const key = keyOf(row.tenantId, row.debounceKey);
      // A holder of this very type appeared since: write again, into it.
      if (wanted.get(key) !== row.name) byKey.set(key, { row, created: false, matched: 'debounce' });
    }
    todo = missing.filter((r) => !byKey.has(keyOf(ownerOf(r), r.debounceKey)));
  }
  return new Map(rows.map((r) => [r, byKey.get(keyOf(ownerOf(r), r.debounceKey)) as Inserted]));
}
