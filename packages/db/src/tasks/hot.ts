import type postgres from 'postgres';
import { Batcher, ItemFailure } from '../batcher.ts';
import { isDatabaseUnavailable, isTransientDatabaseError } from '../errors.ts';
import type { NewTaskRow, TaskError, TaskKeyKind, TaskRow } from '../schema.ts';
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
   * number of processes) end with one task: task_keys decides (see `Inserted`). Under a
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
 * New rows, unless an idempotency or singleton key of the owner answers instead: one INSERT, whose
 * rows with a key held already are skipped (the trigger tasks_claim_keys, over task_keys), then the
 * holder of each key that refused a row is read. A singleton key whose holder finished between the two is
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
 * A key older than the window is free again: its task_keys row goes, and it is detached from the
 * owner's old task before the insert (a change like any other: version and updated_at move, and it
 * is announced), found by the freed row's (task_id, task_created_at): its partition.
 */
export async function freeExpiredKeys(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
  options: HotOptions,
): Promise<void> {
  const keyed = rows.filter((r) => r.idempotencyKey != null);
  if (keyed.length === 0) return;
  const freed = await pg<{ id: string }[]>`
    delete from task_keys tk
    using unnest(${column(keyed, (r) => r.tenantId ?? 'default')}::text[],
                 ${column(keyed, (r) => r.idempotencyKey)}::text[]) as k(owner_id, key)
    where tk.owner_id = k.owner_id and tk.kind = 'idempotency' and tk.key = k.key
      and tk.task_created_at < now() - make_interval(secs => ${options.idempotencyWindowSeconds})
    returning tk.task_id as id`;
  if (freed.length === 0) return;
  const ids = freed.map((f) => f.id);
  await pg`
    update tasks t set idempotency_key = null, version = t.version + 1, updated_at = now()
    where t.id = any(${pgArray(ids)}::uuid[]) ${andCreatedAt(pg, 't', ids)} and t.idempotency_key is not null`;
}

/**
 * The holders of keys of `kind` (task_keys, by their (task_id, task_created_at)), by `keyOf(owner,
 * key)`: the `columns` of each (the whole row, or a batch's few), read with the holder's keys.
 */
async function holdersOf(
  pg: postgres.Sql,
  kind: TaskKeyKind,
  keys: readonly { owner: string; key: string }[],
  columns: string,
  condition = '',
): Promise<Map<string, TaskRow>> {
  const holders = new Map<string, TaskRow>();
  if (keys.length === 0) return holders;
  const rows = await pg`
    select k.owner_id as key_owner, k.key as key_value, ${pg.unsafe(qualified(columns))}
    from task_keys k join tasks t on t.id = k.task_id and t.created_at = k.task_created_at
    where k.kind = ${kind} and (k.owner_id, k.key) in (
      select * from unnest(${pgArray(keys.map((k) => k.owner))}::text[], ${pgArray(keys.map((k) => k.key))}::text[]))
      ${pg.unsafe(condition)}`;
  for (const raw of rows) {
    const { key_owner, key_value, ...row } = raw;
    holders.set(keyOf(String(key_owner), String(key_value)), fromDriver(row));
  }
  return holders;
}

/** Debounced submissions as the rows `u` of their statements (each with its delay). */
const debouncedRows = (pg: postgres.Sql, rows: readonly TaskInsert[]) => pg`
  unnest(${column(rows, (r) => r.id)}::uuid[], ${column(rows, ownerOf)}::text[],
    ${column(rows, (r) => r.name)}::text[], ${column(rows, (r) => JSON.stringify(r.input ?? null))}::jsonb[],
    ${column(rows, (r) => r.maxAttempts ?? 1)}::int[], ${column(rows, (r) => r.priority ?? 0)}::int[],
    ${column(rows, (r) => r.timeoutMs)}::int[], ${column(rows, (r) => r.ttlMs)}::int[],
    ${column(rows, (r) => r.concurrencyKey)}::text[], ${column(rows, (r) => r.debounceKey)}::text[],
    ${column(rows, (r) => r.debounceDelayMs ?? 0)}::int[], ${column(rows, (r) => (r.trace ? JSON.stringify(r.trace) : null))}::jsonb[],
    ${column(rows, tagsOf)}::text[], ${column(rows, metadataOf)}::jsonb[], ${column(rows, (r) => r.webhookUrl)}::text[],
    ${column(rows, (r) => r.llmCacheTtlMs)}::int[], ${column(rows, createdMs)}::bigint[])
  as u(id, owner_id, name, input, max_attempts, priority, timeout_ms, ttl_ms, concurrency_key, debounce_key, delay_ms, trace,
       tags, metadata, webhook_url, llm_cache_ttl_ms, created_ms)`;

/** `columns` ('*' or a list) of the tasks row aliased `t`. */
const qualified = (columns: string) =>
  columns
    .split(',')
    .map((c) => `t.${c.trim()}`)
    .join(', ');

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
    // A keyed row claims its keys in task_keys first (the trigger tasks_claim_keys, migration
    // 0035): a key held already (also by a row before it in this statement) skips the row, which
    // RETURNING then lacks. Rows sorted by their keys, so that concurrent batches take the keys'
    // locks in one order. No ON CONFLICT: a row meets no unique index of tasks but the primary key
    // (its id, made by the server, and its created_at).
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
    const replays = await holdersOf(
      pg,
      'idempotency',
      lost
        .filter((r) => r.idempotencyKey != null)
        .map((r) => ({ owner: ownerOf(r), key: r.idempotencyKey as string })),
      columns,
    );
    const singletons = await holdersOf(
      pg,
      'singleton',
      lost
        .filter(
          (r) =>
            r.singletonKey != null &&
            (r.idempotencyKey == null || !replays.has(keyOf(ownerOf(r), r.idempotencyKey))),
        )
        .map((r) => ({ owner: ownerOf(r), key: r.singletonKey as string })),
      columns,
      'and t.finished_at is null',
    );
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
 * Debounced submissions: each (owner, debounce key) has at most one PENDING task from its
 * submission (task_keys, kind debounce). A submission either creates that task or moves it: the
 * newest input, options and start (run_after = the database's clock + delay, taken when the row is
 * written, so the last write to commit sets the start). Submissions of one batch with one key are
 * one write, the last one's (the others joined it); one of another type than that last one waits
 * for the next statement. A holder that stopped being PENDING meanwhile frees the key: the write
 * is tried again.
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

/**
 * The writes of `upsertDebounced`, for rows of distinct keys: a new task for each key that no
 * PENDING task holds (the insert claims it, tasks_claim_keys), then the others written into their
 * key's holder.
 */
async function writeDebounced(
  pg: postgres.Sql,
  rows: readonly TaskInsert[],
): Promise<Map<TaskInsert, Inserted>> {
  const byKey = new Map<string, Inserted>();
  let todo = rows;
  for (let round = 0; todo.length > 0; round++) {
    if (round === KEY_ROUNDS)
      throw new Error(`insert: no answer for ${todo.length} debounced task(s) after ${round} rounds`);
    // One statement: a new task for each key that no task holds (the insert's trigger claims it, and
    // skips a row whose key is held), and each key's PENDING holder of the same type moved to this
    // submission (its row locked in the keys' order, a sorted FOR UPDATE, so that concurrent batches
    // never deadlock). The two exclude each other: a holder found in the statement's snapshot holds
    // its key (it leaves PENDING and frees the key in one commit), so its row's insert is skipped.
    const written = await againOnConflict(() =>
      pg`
      with v as (
        select u.*, clock_timestamp() + u.delay_ms * interval '1 millisecond' as start from ${debouncedRows(pg, todo)}),
      inserted as (
        insert into tasks (id, owner_id, name, input, max_attempts, priority, timeout_ms, run_after, ttl_ms, expires_at,
                           concurrency_key, debounce_key, trace, tags, metadata, webhook_url, llm_cache_ttl_ms, created_at)
        select v.id, v.owner_id, v.name, v.input, v.max_attempts, v.priority, v.timeout_ms, v.start, v.ttl_ms,
               case when v.ttl_ms is null then null else v.start + v.ttl_ms * interval '1 millisecond' end,
               coalesce(v.concurrency_key, v.owner_id), v.debounce_key, v.trace, v.tags::text[], v.metadata, v.webhook_url,
               v.llm_cache_ttl_ms, ${pg.unsafe(CREATED_AT)}
        from v
        order by v.owner_id, v.debounce_key
        returning *),
      holder as (
        select t.id as holder_id, t.created_at as holder_created_at, v.* from v
        join task_keys k on k.owner_id = v.owner_id and k.kind = 'debounce' and k.key = v.debounce_key
        join tasks t on t.id = k.task_id and t.created_at = k.task_created_at
        where t.status = 'PENDING' and t.name = v.name
        order by v.owner_id, v.debounce_key
        for update of t),
      moved as (
        update tasks t set input = h.input, run_after = h.start, ttl_ms = h.ttl_ms,
          expires_at = case when h.ttl_ms is null then null else h.start + h.ttl_ms * interval '1 millisecond' end,
          priority = h.priority, max_attempts = h.max_attempts, timeout_ms = h.timeout_ms,
          concurrency_key = coalesce(h.concurrency_key, h.owner_id), tags = h.tags::text[], metadata = h.metadata,
          webhook_url = h.webhook_url, llm_cache_ttl_ms = h.llm_cache_ttl_ms, version = t.version + 1, updated_at = now()
        from holder h
        where t.id = h.holder_id and t.created_at = h.holder_created_at
        returning t.*)
      select true as is_new, * from inserted
      union all
      select false as is_new, * from moved`.catch(refuseClockSkew),
    );
    for (const raw of written) {
      const row = fromDriver(raw);
      byKey.set(
        keyOf(row.tenantId, row.debounceKey),
        raw.is_new === true ? { row, created: true } : { row, created: false, matched: 'debounce' },
      );
    }
    const missing = todo.filter((r) => !byKey.has(keyOf(ownerOf(r), r.debounceKey)));
    if (missing.length === 0) break;
    // Nothing written: the holder is of another type (it answers), or it stopped being PENDING
    // after the insert found its key (the key is free: again).
    const holders = await holdersOf(
      pg,
      'debounce',
      missing.map((r) => ({ owner: ownerOf(r), key: r.debounceKey as string })),
      '*',
      "and t.status = 'PENDING'",
    );
    for (const r of missing) {
      const key = keyOf(ownerOf(r), r.debounceKey);
      const holder = holders.get(key);
      // A holder of this very type appeared since: write again, into it.
      if (holder && holder.name !== r.name)
        byKey.set(key, { row: holder, created: false, matched: 'debounce' });
    }
    todo = missing.filter((r) => !byKey.has(keyOf(ownerOf(r), r.debounceKey)));
  }
  return new Map(rows.map((r) => [r, byKey.get(keyOf(ownerOf(r), r.debounceKey)) as Inserted]));
}
