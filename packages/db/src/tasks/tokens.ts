import { createHash } from 'node:crypto';
import type postgres from 'postgres';
import type { TaskRow } from '../schema.ts';
import { andCreatedAt } from './id-time.ts';
import { byId } from './rows.ts';
import { conditionText } from './transition-sql.ts';

const TOKEN_DONE = conditionText('tokenDone');
const WAIT_OVER = conditionText('waitOver');

/** How a wait token stands: open, completed (its output recorded), or past its timeout. */
export type WaitTokenStatus = 'waiting' | 'completed' | 'timed_out';

/** A wait token (`wait_tokens`, migration 0028). */
export interface WaitTokenRow {
  id: string;
  /** The tenant of its task: only that tenant may complete it with a key. */
  tenantId: string;
  taskId: string;
  /** The step of the task's handler that made it (`$token:N`). */
  stepId: string;
  status: WaitTokenStatus;
  /** The completion's output (JSON), once completed. */
  output: unknown;
  timeoutAt: Date;
  createdAt: Date;
  completedAt: Date | null;
}

/** A new token, made by a step of its task's handler (`ctx.createToken`). */
export interface NewWaitToken {
  id: string;
  tenantId: string;
  taskId: string;
  /** The task's created_at: its step goes in its week (`tasker_step_time`). */
  taskCreatedAt: Date;
  stepId: string;
  /** The step's place in the handler's order. */
  seq: number;
  /** `hashTokenSecret` of the callback URL's secret. */
  secretHash: string;
  timeoutAt: Date;
  /** What the step records as its result (the token as the handler sees it). */
  result: unknown;
  startedAt: Date;
}

/** Which token a completion names: its id within a tenant (a key's call), or its callback secret's hash. */
export type TokenRef = { id: string; tenantId?: string } | { secretHash: string };

/**
 * A completion's outcome. `completed`: this call completed it (and `woken`, the task it woke, if it
 * was WAITING for it). Otherwise why not: no such token (or another tenant's), completed already,
 * past its timeout, or its task is finished (cancelled while it waited).
 */
export type TokenCompletion =
  | { outcome: 'completed'; token: WaitTokenRow; woken: TaskRow | undefined }
  | { outcome: 'not-found' }
  | { outcome: 'already-completed' | 'timed-out' | 'task-finished'; token: WaitTokenRow };

/** Whether `id` has a token id's form (a UUID): anything else names no token (and would fail the `::uuid` cast). */
export function isTokenId(id: unknown): id is string {
  return typeof id === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
}

/** The SHA-256 (hex) of a callback URL's secret: all that is stored of it. */
export function hashTokenSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function fromRow(raw: Record<string, unknown>): WaitTokenRow {
  const date = (v: unknown) => (v instanceof Date ? v : new Date(String(v)));
  return {
    id: String(raw.id),
    tenantId: String(raw.owner_id),
    taskId: String(raw.task_id),
    stepId: String(raw.step_id),
    status: raw.status as WaitTokenStatus,
    output: raw.output ?? null,
    timeoutAt: date(raw.timeout_at),
    createdAt: date(raw.created_at),
    completedAt: raw.completed_at == null ? null : date(raw.completed_at),
  };
}

/**
 * Wait tokens (`wait_tokens`): made by a step of a task's handler, completed once from outside (a
 * key of the task's tenant, or the callback URL's secret) before their timeout, read by the run of
 * the handler that waits for them.
 *
 * Waking the waiting task without a lost wake-up: a completion commits the token first, then wakes
 * the task if it is WAITING for it (`tokenDone`); the worker suspending a task commits WAITING
 * first, then looks at the token and, if it was completed meanwhile, ends the wait now
 * (`dueIfCompleted`: the waker wakes it at its next pass). Whichever order the four statements
 * commit in, one of the two wakes it.
 */
export class WaitTokens {
  constructor(private readonly pg: postgres.Sql) {}

  /**
   * Makes a token and records the step that made it (completed, with `result`) in one statement.
   * Returns the step's recorded result: `result`, or, when another run of the task made this step's
   * token first, that run's.
   */
  async create(token: NewWaitToken): Promise<unknown> {
    const week = token.taskCreatedAt.toISOString();
    const [made] = await this.pg`
      with token as (
        insert into wait_tokens (id, owner_id, task_id, step_id, secret_hash, timeout_at)
        values (${token.id}::uuid, ${token.tenantId}, ${token.taskId}::uuid, ${token.stepId},
                ${token.secretHash}, ${token.timeoutAt.toISOString()}::timestamptz)
        on conflict (task_id, step_id) do nothing
        returning task_id, step_id)
      insert into task_steps (task_id, task_created_at, step_id, seq, status, output, started_at, finished_at)
      select task_id, tasker_step_time(${week}::timestamptz), step_id, ${token.seq}::int, 'completed',
             ${JSON.stringify(token.result)}::jsonb, ${token.startedAt.toISOString()}::timestamptz, now()
      from token
      on conflict (task_id, step_id, task_created_at) do update set seq = excluded.seq, status = 'completed',
        output = excluded.output, error = null, started_at = excluded.started_at, finished_at = now()
      returning output`;
    if (made) return made.output;
    const [recorded] = await this.pg`
      select output from task_steps
      where task_id = ${token.taskId}::uuid and step_id = ${token.stepId}
        and task_created_at = tasker_step_time(${week}::timestamptz) and status = 'completed'`;
    if (!recorded)
      throw new Error(`token step ${token.stepId} of task ${token.taskId} is neither made nor recorded`);
    return recorded.output;
  }

  /** A token by id (in `tenantId` when given). */
  async get(id: string, tenantId?: string): Promise<WaitTokenRow | undefined> {
    const [row] = await this.pg`
      select * from wait_tokens
      where id = ${id}::uuid ${tenantId === undefined ? this.pg`` : this.pg`and owner_id = ${tenantId}`}`;
    return row ? fromRow(row) : undefined;
  }

  /**
   * The token as the waiting run must see it: one still open past its timeout is marked
   * `timed_out` first (by the clock of PostgreSQL, the one a completion is checked against), so
   * that no completion can land after a run decided it timed out.
   */
  async settle(id: string): Promise<WaitTokenRow | undefined> {
    const [timedOut] = await this.pg`
      update wait_tokens set status = 'timed_out'
      where id = ${id}::uuid and status = 'waiting' and timeout_at <= now()
      returning *`;
    return timedOut ? fromRow(timedOut) : this.get(id);
  }

  /**
   * Completes a token with `output`, once: only while it is open, before its timeout, and while its
   * task is unfinished. Then wakes its task if it is WAITING for it.
   */
  async complete(ref: TokenRef, output: unknown): Promise<TokenCompletion> {
    const matching = (sql: postgres.Sql) =>
      'secretHash' in ref
        ? sql`w.secret_hash = ${ref.secretHash}`
        : ref.tenantId === undefined
          ? sql`w.id = ${ref.id}::uuid`
          : sql`w.id = ${ref.id}::uuid and w.owner_id = ${ref.tenantId}`;
    const match = matching(this.pg);
    // The token and its task's wake commit together: a process that dies between them cannot leave
    // a completed token whose task sleeps on until the token's timeout.
    const completed = await this.pg.begin(async (tx) => {
      const sql = tx as unknown as postgres.Sql;
      const [done] = await sql`
        update wait_tokens w set status = 'completed', output = ${JSON.stringify(output ?? null)}::jsonb,
          completed_at = now()
        where ${matching(sql)} and w.status = 'waiting' and w.timeout_at > now()
          and exists (select 1 from tasks t where t.id = w.task_id and t.finished_at is null)
        returning w.*`;
      if (!done) return undefined;
      const token = fromRow(done);
      return { outcome: 'completed' as const, token, woken: await this.wake(token, sql) };
    });
    if (completed) return completed;
    const [found] = await this.pg`
      select w.*, t.finished_at is not null as task_finished
      from wait_tokens w left join tasks t on t.id = w.task_id
      where ${match}`;
    if (!found) return { outcome: 'not-found' };
    const token = fromRow(found);
    if (token.status === 'completed') return { outcome: 'already-completed', token };
    if (token.status === 'timed_out' || token.timeoutAt.getTime() <= Date.now())
      return { outcome: 'timed-out', token };
    if (found.task_finished) return { outcome: 'task-finished', token };
    // Open, in time, its task unfinished, yet not completed above: a completion that raced this one.
    return { outcome: 'already-completed', token };
  }

  /** WAITING → PENDING (`tokenDone`) for the task of `token`, if it is WAITING for it. */
  private async wake(token: WaitTokenRow, sql: postgres.Sql = this.pg): Promise<TaskRow | undefined> {
    const rows = await sql`
      update tasks t set status = 'PENDING', version = t.version + 1, updated_at = now(),
        waiting_for = null, run_after = now()
      where t.id = ${token.taskId}::uuid ${andCreatedAt(sql, 't', [token.taskId])} and ${sql.unsafe(TOKEN_DONE)}
        and t.waiting_for->>'kind' = 'token' and t.waiting_for->>'token' = ${token.id}
      returning t.*`;
    return [...byId(rows).values()][0];
  }

  /**
   * After a task was made WAITING for `tokenId` (committed): if the token was completed meanwhile
   * (a completion that found the task still RUNNING), its wait ends now (`waitOver`: run_after now,
   * still WAITING), and the waker's next pass wakes it. Not woken here: the attempt that suspended
   * it still holds its job (under the task's id) until the worker ends it, and the dispatcher's
   * new job for the woken task would be ignored while that one is in the queue. The row, if its
   * wait ended.
   */
  async dueIfCompleted(tokenId: string): Promise<TaskRow | undefined> {
    const rows = await this.pg`
      update tasks t set version = t.version + 1, updated_at = now(), run_after = now()
      where ${this.pg.unsafe(WAIT_OVER)}
        and t.id = (select w.task_id from wait_tokens w where w.id = ${tokenId}::uuid and w.status = 'completed')
        and t.waiting_for->>'kind' = 'token' and t.waiting_for->>'token' = ${tokenId}
      returning t.*`;
    return [...byId(rows).values()][0];
  }
}
