import type postgres from 'postgres';
import { holdsAdvisoryLock } from '../advisory-lock.ts';
import { COUNT_CAP } from '../limits.ts';
import { andCreatedAt } from './id-time.ts';
import { column } from './rows.ts';
import { statusByIdText } from './transition-sql.ts';

/**
 * The dispatcher's statements (fair dequeue): which tasks wait for their turn, which hold a slot,
 * and handing tasks to the queue. A handout (a row of `task_handouts`, see schema.ts) is delivery,
 * not a state of the task: the task's row is not written, no version moves, nothing is announced.
 */

/** Tasks handed to the queue and not finished, of one tenant, type and concurrency key. */
export interface HoldingGroup {
  tenantId: string;
  name: string;
  concurrencyKey: string;
  /** Handed out and unfinished (queued in BullMQ, in a retry's backoff, or running). */
  holding: number;
  /** Of those, not running yet: jobs waiting in the queue. */
  waiting: number;
}

/** A task waiting for its turn, as the planner needs it and the queue adds it. */
export interface ReadyTask {
  id: string;
  tenantId: string;
  name: string;
  concurrencyKey: string;
  priority: number;
  maxAttempts: number;
  runAfter: Date | null;
  /** The submitting request's trace context, for the job. */
  trace?: { traceparent?: string; tracestate?: string };
}

// Tasks looked up by id (a handout's, or the ids a pass picked): by the primary key, never by an
// index on status (transition-sql.ts, statusByIdText).
const UNFINISHED_BY_ID = statusByIdText(['PENDING', 'RUNNING']);
const PENDING_BY_ID = statusByIdText(['PENDING']);

/** A PENDING task not handed out: waiting for its turn (its alias must be `t`). */
const READY = `t.status = 'PENDING' and not exists (select from task_handouts h where h.task_id = t.id)`;

const toReady = (r: Record<string, unknown>): ReadyTask => ({
  id: r.id as string,
  tenantId: r.owner_id as string,
  name: r.name as string,
  concurrencyKey: r.concurrency_key as string,
  priority: r.priority as number,
  maxAttempts: r.max_attempts as number,
  runAfter: r.run_after == null ? null : new Date(r.run_after as string | Date),
  ...(r.trace ? { trace: r.trace as ReadyTask['trace'] } : {}),
});

export class DispatchQueries {
  constructor(private readonly pg: postgres.Sql) {}

  /**
   * Every group of tasks holding a slot: the handouts (only tasks in flight; a finished task's
   * handout goes in the commit that finishes it), split by whether the task runs yet. Each
   * handout's task is looked up by its primary key (`offset 0` keeps the lookup a subquery per
   * handout): joined as a whole, a planner that thought the tasks table small hashed all of it,
   * every pass, a seq scan that grows with the table while the handouts stay a few hundred.
   */
  async holding(): Promise<HoldingGroup[]> {
    const rows = await this.pg<
      { owner_id: string; name: string; key: string; holding: number; waiting: number }[]
    >`
      select h.owner_id, h.name, h.concurrency_key as key, count(*)::int as holding,
             (count(*) filter (where t.status = 'PENDING'))::int as waiting
      from task_handouts h
      cross join lateral (select t.status from tasks t where t.id = h.task_id and ${this.pg.unsafe(UNFINISHED_BY_ID)} offset 0) t
      group by 1, 2, 3`;
    return rows.map((r) => ({
      tenantId: r.owner_id,
      name: r.name,
      concurrencyKey: r.key,
      holding: r.holding,
      waiting: r.waiting,
    }));
  }

  /**
   * The tenants with PENDING tasks, at most `limit`, from after `after` (wrapping round): a skip
   * scan of tasks_ready_idx, one index probe per tenant however many tasks each has. Whether a
   * tenant's tasks are handed out already is `candidates`' question: asked here too, it walked each
   * tenant's tasks in flight once more a pass (or, in a plan sorting the tenants, every PENDING task).
   */
  async readyTenants(limit: number, after = ''): Promise<string[]> {
    const scan = (from: string, max: number) => this.pg<{ owner_id: string }[]>`
      with recursive t(owner_id) as (
        (select t.owner_id from tasks t where t.status = 'PENDING' and t.owner_id > ${from} order by t.owner_id limit 1)
        union all
        select (select t.owner_id from tasks t where t.status = 'PENDING' and t.owner_id > r.owner_id order by t.owner_id limit 1)
        from t r where r.owner_id is not null
      )
      select owner_id from t where owner_id is not null limit ${max}`;
    const first = (await scan(after, limit)).map((r) => r.owner_id);
    if (first.length >= limit || after === '') return first;
    const wrapped = (await scan('', limit - first.length)).map((r) => r.owner_id).filter((t) => t <= after);
    return [...first, ...wrapped];
  }

  /**
   * Up to `perTenant` due tasks of each of these tenants, in the order each tenant's own tasks go:
   * priority (higher first), then age. Tasks of `pausedTypes` and tasks whose run_after is still
   * ahead wait, and so do the tasks of `held.names` (LLM task types) of `held.tenants` (tenants
   * over an LLM budget).
   */
  async candidates(
    tenants: readonly string[],
    perTenant: number,
    pausedTypes: readonly string[],
    held: { tenants: readonly string[]; names: readonly string[] } = { tenants: [], names: [] },
  ): Promise<ReadyTask[]> {
    if (tenants.length === 0 || perTenant <= 0) return [];
    const rows = await this.pg`
      select c.* from unnest(${column(tenants, (t) => t)}::text[]) as o(owner_id)
      cross join lateral (
        select id, owner_id, name, coalesce(concurrency_key, owner_id) as concurrency_key, priority, max_attempts, run_after, trace
        from tasks t
        where t.owner_id = o.owner_id and ${this.pg.unsafe(READY)}
          and (t.run_after is null or t.run_after <= now())
          and t.name <> all(${column(pausedTypes, (n) => n)}::text[])
          and not (o.owner_id = any(${column(held.tenants, (t) => t)}::text[])
                   and t.name = any(${column(held.names, (n) => n)}::text[]))
        order by t.priority desc, t.created_at, t.id
        limit ${perTenant}) c`;
    return rows.map(toReady);
  }

  /**
   * Each tenant's unfinished tasks: RUNNING, PENDING (queued, delayed or waiting for a retry), and
   * WAITING (suspended: a sleep, child tasks or a wait token; holding no slot).
   */
  async perTenant(): Promise<{ tenantId: string; running: number; queued: number; waiting: number }[]> {
    const rows = await this.pg<{ owner_id: string; running: number; queued: number; waiting: number }[]>`
      select owner_id, (count(*) filter (where status = 'RUNNING'))::int as running,
             (count(*) filter (where status = 'PENDING'))::int as queued,
             (count(*) filter (where status = 'WAITING'))::int as waiting
      from tasks where status in ('PENDING', 'RUNNING', 'WAITING') group by owner_id`;
    return rows.map((r) => ({
      tenantId: r.owner_id,
      running: r.running,
      queued: r.queued,
      waiting: r.waiting,
    }));
  }

  /**
   * Tasks suspended (WAITING: a sleep, child tasks or a wait token), which hold no worker slot and
   * no job. Counted up to `cap` (the index of waiting tasks serves it).
   */
  async suspended(cap = COUNT_CAP): Promise<number> {
    const [row] = await this.pg<{ n: number }[]>`
      select count(*)::int as n
      from (select 1 from tasks where waiting_for is not null and status::text = 'WAITING' limit ${cap}) w`;
    return row?.n ?? 0;
  }

  /**
   * Tasks waiting for their turn (not handed to the queue yet): due now, and delayed (run_after
   * ahead). Counted up to `cap` in all (a page that polls it must not walk a huge backlog).
   */
  async waiting(cap = COUNT_CAP): Promise<{ due: number; delayed: number }> {
    const [row] = await this.pg<{ due: number; delayed: number }[]>`
      select (count(*) filter (where run_after is null or run_after <= now()))::int as due,
             (count(*) filter (where run_after > now()))::int as delayed
      from (select t.run_after from tasks t where ${this.pg.unsafe(READY)} limit ${cap}) w`;
    return { due: row?.due ?? 0, delayed: row?.delayed ?? 0 };
  }

  /**
   * Hands these tasks to the queue (those still waiting for their turn): writes their handouts;
   * returns the ones it took. `orders`: each task's place among its tenant's tasks in flight (the
   * job's priority, 1 first; in PostgreSQL-only mode the handout is the job: `JobQueries`), 0 when
   * not given. `leader`: only on the session that holds this advisory lock: a dispatcher that lost
   * its session (and so its lock) hands out nothing, so two dispatchers never count and hand out
   * against the same limits.
   */
  async dispatch(
    ids: readonly string[],
    leader?: { sql: postgres.Sql; lockKey: number },
    orders?: readonly number[],
  ): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const sql = leader?.sql ?? this.pg;
    const rows = await sql<{ task_id: string }[]>`
      insert into task_handouts (task_id, owner_id, name, concurrency_key, job_priority, max_attempts, trace)
      select t.id, t.owner_id, t.name, coalesce(t.concurrency_key, t.owner_id), v.job_priority, t.max_attempts, t.trace
      from unnest(${column(ids, (id) => id)}::uuid[], ${column(ids, (_, i) => orders?.[i] ?? 0)}::int[]) as v(id, job_priority)
      join tasks t on t.id = v.id ${andCreatedAt(sql, 't', ids)}
      where ${this.pg.unsafe(PENDING_BY_ID)}
        and ${leader ? holdsAdvisoryLock(sql, leader.lockKey) : sql`true`}
      on conflict do nothing
      returning task_id`;
    return new Set(rows.map((r) => r.task_id));
  }

  /**
   * Takes these PENDING tasks back from the queue (their jobs were removed: a paused type): they
   * wait for their turn again.
   */
  async undispatch(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const rows = await this.pg`
      delete from task_handouts h using tasks t
      where h.task_id = any(${column(ids, (id) => id)}::uuid[]) and t.id = h.task_id ${andCreatedAt(this.pg, 't', ids)}
        and ${this.pg.unsafe(PENDING_BY_ID)}
      returning h.task_id`;
    return rows.length;
  }

  /**
   * Deletes the handouts of finished tasks (and of tasks gone): a handout written in the instant its
   * task finished, which the finishing trigger could not see yet. They hold nothing meanwhile
   * (`holding` joins unfinished tasks only). How many.
   */
  async forgetFinished(): Promise<number> {
    const rows = await this.pg`
      delete from task_handouts h
      where not exists (select from tasks t where t.id = h.task_id and ${this.pg.unsafe(UNFINISHED_BY_ID)})
      returning h.task_id`;
    return rows.length;
  }

  /** Takes back every PENDING task of this type from the queue; how many. */
  async undispatchType(name: string): Promise<number> {
    const rows = await this.pg`
      delete from task_handouts h using tasks t
      where h.name = ${name} and t.id = h.task_id and ${this.pg.unsafe(PENDING_BY_ID)}
      returning h.task_id`;
    return rows.length;
  }
}
