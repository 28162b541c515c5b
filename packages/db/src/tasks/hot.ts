import type postgres from 'postgres';
import { Batcher } from '../batcher.ts';
import type { NewTaskRow, TaskError, TaskRow } from '../schema.ts';
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
  private readonly inserts: Batcher<NewTaskRow, { row: TaskRow; created: boolean }>;
  private readonly insertLimited: (
    row: NewTaskRow,
    maxQueued: MaxQueued,
  ) => Promise<{ row: TaskRow; created: boolean }>;
  private readonly claims: Batcher<{ id: string; workerId: string; attempt: number }, TaskRow | undefined>;
  private readonly completions: Batcher<{ id: string; output: unknown }, TaskRow | undefined>;
  private readonly failures: Batcher<FailedAttempt, TaskRow | undefined>;

  constructor(pg: postgres.Sql, options: HotOptions) {
    this.inserts = new Batcher(
      (rows) => insertTasks(pg, rows, options),
      (row) => row.id,
      { maxSize: 200 },
    );
    this.insertLimited = (row, maxQueued) =>
      insertWithinQueueLimits(pg, row, maxQueued, (tx, rows) => insertTasks(tx, rows, options));
    this.claims = new Batcher(
      async (items) => {
        const claimed = new Map<string, TaskRow>();
        for (const workerId of new Set(items.map((i) => i.workerId))) {
          const mine = items.filter((i) => i.workerId === workerId);
          const rows = await pg`
            update tasks t set status = 'RUNNING', version = t.version + 1, attempts = v.attempt, progress = null,
              started_at = coalesce(t.started_at, now()), updated_at = now(), worker_id = ${workerId}
            from unnest(${column(mine, (i) => i.id)}::uuid[], ${column(mine, (i) => i.attempt)}::int[]) as v(id, attempt)
            where t.id = v.id and ${pg.unsafe(CLAIM)}
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
            where t.id = v.id and ${pg.unsafe(COMPLETE)}
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
            where t.id = v.id and ${pg.unsafe(FAIL)}
            returning t.*`,
        );
        return items.map((i) => failed.get(i.id));
      },
      (item) => item.id,
      { maxSize: 200 },
    );
  }

  /**
   * Records a new task. With an idempotency key already used by this owner within the window, no
   * row is written: the existing task comes back with `created: false` (two racing inserts with one
   * key also end with one row). Under a `max_queued` limit, a submission is inserted on its own and
   * counted, or refused with a QueueFullError and nothing stored (queue-limit.ts).
   */
  insert(row: NewTaskRow, options: InsertOptions = {}): Promise<{ row: TaskRow; created: boolean }> {
    if (limitsQueue(options.maxQueued)) return this.insertLimited(row, options.maxQueued);
    return this.inserts.add(row);
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

async function insertTasks(
  pg: postgres.Sql,
  rows: readonly NewTaskRow[],
  options: HotOptions,
): Promise<{ row: TaskRow; created: boolean }[]> {
  const keyed = rows.filter((r) => r.idempotencyKey != null);
  if (keyed.length > 0) {
    // A key older than the window is free again: detach it from the owner's old task first
    // (a change like any other: version and updated_at move, and it is announced).
    await pg`
      update tasks t set idempotency_key = null, version = t.version + 1, updated_at = now()
      from unnest(${column(keyed, (r) => r.tenantId ?? 'default')}::text[],
                  ${column(keyed, (r) => r.idempotencyKey)}::text[]) as k(owner_id, key)
      where t.owner_id = k.owner_id and t.idempotency_key = k.key
        and t.created_at < now() - make_interval(secs => ${options.idempotencyWindowSeconds})`;
  }
  // expires_at counts from when the task may first start (run_after, else now).
  const inserted = byId(
    await pg`
      insert into tasks (id, owner_id, name, input, max_attempts, priority, timeout_ms, idempotency_key, run_after, ttl_ms, expires_at)
      select v.*, case when v.ttl_ms is null then null
                       else coalesce(v.run_after, now()) + v.ttl_ms * interval '1 millisecond' end
      from unnest(${column(rows, (r) => r.id)}::uuid[], ${column(rows, (r) => r.tenantId ?? 'default')}::text[],
        ${column(rows, (r) => r.name)}::text[], ${column(rows, (r) => JSON.stringify(r.input ?? null))}::jsonb[],
        ${column(rows, (r) => r.maxAttempts ?? 1)}::int[], ${column(rows, (r) => r.priority ?? 0)}::int[],
        ${column(rows, (r) => r.timeoutMs)}::int[], ${column(rows, (r) => r.idempotencyKey)}::text[],
        ${column(rows, (r) => (r.runAfter instanceof Date ? r.runAfter.toISOString() : r.runAfter))}::timestamptz[],
        ${column(rows, (r) => r.ttlMs)}::int[])
        as v(id, owner_id, name, input, max_attempts, priority, timeout_ms, idempotency_key, run_after, ttl_ms)
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
}
