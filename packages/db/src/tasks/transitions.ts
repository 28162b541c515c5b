import type { TransitionName } from '@tasker/states';
import { sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { Database } from '../client.ts';
import { type TaskError, type TaskRow, tasks, type WaitingFor } from '../schema.ts';
import { againOnConflict } from './hot.ts';
import { andCreatedAt } from './id-time.ts';
import { byId, column } from './rows.ts';
import { type Assignments, conditionText, statusAfter, whereOf } from './transition-sql.ts';

const EXPIRE = conditionText('expire');
const WAIT = conditionText('wait');
const WAKE = conditionText('wake');

/** Where a suspended handler stopped: the step that waits (a sleep, child tasks), and for what. */
export interface Suspension {
  stepId: string;
  /** The step's place in the handler's order. */
  seq: number;
  /** What the task waits for (`waiting_for`). */
  waitingFor: WaitingFor;
  /**
   * When the wait ends by itself (`run_after`: the waker's `wake`), a sleep's end; null when only
   * an event ends it (its children's end: `childrenDone`).
   */
  until: Date | null;
  /** What the waiting step records as its output, for the run after the wait: a sleep's end, the children's ids. */
  output: unknown;
}

/** What a retry writes (one task's, `retry`; many at once, `tasks/bulk.ts`): a new round, from now. */
export const RETRY_SET: Assignments<'retry'> = {
  error: null,
  output: null,
  progress: null,
  attempts: 0,
  cancelRequestedAt: null,
  finishedAt: null,
  runAfter: null,
  expiresAt: sql`case when ${tasks.ttlMs} is null then null else now() + ${tasks.ttlMs} * interval '1 millisecond' end`,
};

/**
 * The transitions off the hot path, one conditional UPDATE each: only from the statuses and under
 * the guards its entry in @tasker/states allows, writing only the fields it declares, and always
 * bumping `version` and `updated_at` so that watchers can order states.
 */
export class OtherTransitions {
  constructor(
    private readonly db: Database,
    private readonly pg: postgres.Sql,
  ) {}

  private async apply<T extends TransitionName>(
    name: T,
    id: string,
    set: Assignments<T>,
    tenantId?: string,
  ): Promise<TaskRow | undefined> {
    const status = statusAfter(name);
    // One statement, guarded by the task's state: run again if PostgreSQL chose it as a deadlock's
    // victim (a parent's cancel, whose trigger cancels its children, against its last child's end,
    // whose trigger wakes the parent) instead of failing the request.
    const [row] = await againOnConflict(() =>
      this.db
        .update(tasks)
        .set({
          ...set,
          ...(status ? { status } : {}),
          updatedAt: sql`now()`,
          version: sql`${tasks.version} + 1`,
        })
        .where(whereOf(name, id, tenantId))
        .returning(),
    );
    return row;
  }

  /** Latest progress of a RUNNING task. */
  setProgress(id: string, progress: unknown): Promise<TaskRow | undefined> {
    return this.apply('progress', id, { progress: sql`${JSON.stringify(progress ?? null)}::jsonb` });
  }

  /** Gives an attempt back without counting it (graceful shutdown): RUNNING → PENDING. */
  release(id: string): Promise<TaskRow | undefined> {
    return this.apply('release', id, { attempts: sql`greatest(${tasks.attempts} - 1, 0)` });
  }

  /** PENDING (queued or delayed) or WAITING → CANCELLED at once: it will never run (again). */
  cancelPending(id: string, error: TaskError, tenantId?: string): Promise<TaskRow | undefined> {
    return this.apply(
      'cancelPending',
      id,
      { error, cancelRequestedAt: sql`now()`, finishedAt: sql`now()`, waitingFor: null },
      tenantId,
    );
  }

  /**
   * RUNNING → WAITING (`wait`): the handler suspended itself at a sleep. One statement: the task
   * waits until `until` (waiting_for, run_after), its handout goes (a waiting task holds no slot),
   * and the sleep's step is recorded `waiting`, so that the run after the wait finds it. Undefined
   * when the task is no longer RUNNING or a cancel was asked for.
   */
  async wait(id: string, suspension: Suspension): Promise<TaskRow | undefined> {
    const until = suspension.until?.toISOString() ?? null;
    const rows = await this.pg`
      with waiting as (
        update tasks t set status = 'WAITING', version = t.version + 1, updated_at = now(),
          waiting_for = ${JSON.stringify(suspension.waitingFor)}::jsonb, run_after = ${until}::timestamptz,
          expires_at = null, debounce_key = null
        where t.id = ${id}::uuid ${andCreatedAt(this.pg, 't', [id])} and ${this.pg.unsafe(WAIT)}
        returning t.*),
      handout as (delete from task_handouts where task_id in (select id from waiting)),
      step as (
        insert into task_steps (task_id, task_created_at, step_id, seq, status, output, started_at)
        select id, tasker_step_time(created_at), ${suspension.stepId}, ${suspension.seq}, 'waiting',
               ${JSON.stringify(suspension.output ?? null)}::jsonb, now()
        from waiting
        on conflict (task_id, step_id, task_created_at) do update set seq = excluded.seq, status = 'waiting',
          output = excluded.output, error = null, finished_at = null
        where task_steps.status <> 'completed')
      select * from waiting t`;
    return [...byId(rows).values()][0];
  }

  /**
   * WAITING → PENDING (`wake`) for up to `limit` tasks whose wait is over (run_after passed),
   * soonest first (walks tasks_waiting_idx), skipping rows another transaction holds. Each waits
   * for its turn again: the dispatcher hands it out like a new task.
   */
  async wakeDue(limit: number): Promise<TaskRow[]> {
    const rows = await this.pg`
      update tasks t set status = 'PENDING', version = t.version + 1, updated_at = now(), waiting_for = null
      from (select id from tasks where waiting_for is not null and run_after <= now()
            order by run_after limit ${limit} for update skip locked) due
      where t.id = due.id and ${this.pg.unsafe(WAKE)}
      returning t.*`;
    return [...byId(rows).values()];
  }

  /** RUNNING: records that it must stop; the worker running it aborts it and ends it CANCELLED. */
  requestCancel(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    return this.apply(
      'requestCancel',
      id,
      { cancelRequestedAt: sql`coalesce(${tasks.cancelRequestedAt}, now())` },
      tenantId,
    );
  }

  /** Ends as CANCELLED an unfinished task whose cancellation was requested. */
  cancelRunning(id: string, error: TaskError): Promise<TaskRow | undefined> {
    return this.apply('cancelRunning', id, { error, finishedAt: sql`now()` });
  }

  /** Ends an unfinished task as FAILED from outside a worker (e.g. its job was lost for good). */
  failLost(id: string, error: TaskError): Promise<TaskRow | undefined> {
    return this.apply('failLost', id, {
      error,
      attemptErrors: sql`${tasks.attemptErrors} || ${JSON.stringify([error])}::jsonb`,
      finishedAt: sql`now()`,
    });
  }

  /**
   * FAILED, CANCELLED or EXPIRED → PENDING again, same id, for a new round of attempts. The errors
   * of the earlier attempts stay in attempt_errors; a ttl counts again from now.
   */
  retry(id: string, tenantId?: string): Promise<TaskRow | undefined> {
    return this.apply('retry', id, RETRY_SET, tenantId);
  }

  /**
   * Ends as EXPIRED up to `limit` PENDING tasks whose expires_at has passed, soonest first (walks
   * tasks_expiry_idx), skipping rows another transaction holds; each records `error`.
   */
  async expireDue(limit: number, error: TaskError): Promise<TaskRow[]> {
    const rows = await this.pg`
      update tasks t set status = 'EXPIRED', version = t.version + 1, updated_at = now(),
        error = ${JSON.stringify(error)}::jsonb, finished_at = now()
      from (select id from tasks where status = 'PENDING' and expires_at is not null and expires_at <= now()
            order by expires_at limit ${limit} for update skip locked) due
      where t.id = due.id and ${this.pg.unsafe(EXPIRE)}
      returning t.*`;
    return [...byId(rows).values()];
  }

  /** Ends these tasks EXPIRED if they still may (PENDING, past their expiry): the claim's path. */
  async expire(ids: readonly string[], error: TaskError): Promise<TaskRow[]> {
    if (ids.length === 0) return [];
    const rows = await this.pg`
      update tasks t set status = 'EXPIRED', version = t.version + 1, updated_at = now(),
        error = ${JSON.stringify(error)}::jsonb, finished_at = now()
      where t.id = any(${column(ids, (id) => id)}::uuid[]) ${andCreatedAt(this.pg, 't', ids)} and ${this.pg.unsafe(EXPIRE)}
      returning t.*`;
    return [...byId(rows).values()];
  }
}
