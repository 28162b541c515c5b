import type postgres from 'postgres';
import { DispatchQueries } from './dispatch.ts';
import { column } from './rows.ts';

/**
 * The PostgreSQL-only mode's queue (migration 0036): a task's handout is its job. The dispatcher
 * writes it (`DispatchQueries.dispatch`, with the job's priority, attempts and trace context), a
 * worker takes a batch of them at once (`take`: `FOR UPDATE SKIP LOCKED`, a lease of `lockMs` on
 * each) and the commit that finishes the task deletes it (trigger `tasks_finished`). A worker that
 * holds a job renews its lease (`extend`); a lease that lapses is a stalled job (`reclaimStalled`),
 * taken again, and failed (`failed_reason`) once it stalled too often, for the sweeper to fail its
 * task. Every statement here is one round trip, and a batch's jobs share it.
 */

/** The channel a worker LISTENs on: jobs were queued (an empty payload, one per statement). */
export const JOBS_CHANNEL = 'tasker_jobs';

/** A job a worker took. */
export interface TakenJob {
  taskId: string;
  name: string;
  attemptsMade: number;
  maxAttempts: number;
  trace: { traceparent?: string; tracestate?: string } | null;
}

/** A job to queue: its task, its place (1 first) and when it may start (null: now). */
export interface JobToQueue {
  id: string;
  priority: number;
  runAt: Date | null;
}

/** How many jobs are in each state, and whether the queue is paused. */
export interface JobCounts {
  paused: boolean;
  waiting: number;
  delayed: number;
  active: number;
  failed: number;
}

/** Where a job stands (`inspect`): none (no handout), given up on, or queued (waiting, delayed, held). */
export type JobState = 'missing' | 'failed' | 'queued';

/** A job no worker holds, not given up on (its alias must be `h`). */
const FREE = 'h.locked_by is null and h.failed_reason is null';

const notify = `select pg_notify('${JOBS_CHANNEL}', '')`;

export class JobQueries {
  private readonly handouts: DispatchQueries;

  constructor(private readonly pg: postgres.Sql) {
    this.handouts = new DispatchQueries(pg);
  }

  /**
   * Queues these tasks (the sweeper's way, for a handed-out task whose job went missing): their
   * handouts, as the dispatcher writes them (`DispatchQueries.dispatch`, of PENDING tasks), then a
   * wake-up. A task that has a job already keeps it as it is (BullMQ's rule for a known job id). A
   * `runAt` ahead is not stored: the claim of a task not due delays its job to its run_after.
   */
  async enqueue(jobs: readonly JobToQueue[]): Promise<void> {
    if (jobs.length === 0) return;
    const taken = await this.handouts.dispatch(
      jobs.map((j) => j.id),
      undefined,
      jobs.map((j) => j.priority),
    );
    if (taken.size > 0) await this.wake();
  }

  /**
   * Queues a task afresh under its id (a job given up on under a PENDING row: a round left over):
   * its job's attempts, stalls and failure are forgotten. Queued as new when it has no job.
   */
  async replace(job: JobToQueue): Promise<void> {
    const rows = await this.pg`
      with reset as (
        update task_handouts h set failed_reason = null, attempts_made = 0, stalls = 0, locked_by = null,
          locked_until = null, run_at = ${job.runAt?.toISOString() ?? null}::timestamptz, job_priority = ${job.priority}
        where h.task_id = ${job.id}
        returning 1)
      ${this.pg.unsafe(notify)} from reset`;
    if (rows.length === 0) await this.enqueue([job]);
  }

  /** Wakes the workers: jobs were queued by another statement (the dispatcher's handouts). */
  async wake(): Promise<void> {
    await this.pg.unsafe(notify);
  }

  /**
   * Takes up to `limit` free jobs that are due, in queue order (priority, then age), for `worker`,
   * leased for `lockMs`; none while the queue is paused. With fewer than asked, `nextRunAt` says
   * when the soonest delayed job is due (null: none is).
   */
  async take(
    worker: string,
    limit: number,
    lockMs: number,
  ): Promise<{ jobs: TakenJob[]; nextRunAt: Date | null }> {
    const rows = await this.pg<
      {
        task_id: string | null;
        name: string | null;
        attempts_made: number | null;
        max_attempts: number | null;
        trace: TakenJob['trace'];
        job_priority: number | null;
        next_run_at: Date | null;
      }[]
    >`
      with picked as (
        select h.task_id from task_handouts h
        where ${this.pg.unsafe(FREE)} and (h.run_at is null or h.run_at <= now())
          and not coalesce((select paused from queue_state), false)
        order by h.job_priority, h.handed_at, h.task_id
        limit ${limit}
        for update skip locked),
      taken as (
        update task_handouts h set locked_by = ${worker}, locked_until = now() + ${lockMs} * interval '1 millisecond'
        from picked where h.task_id = picked.task_id
        returning h.task_id, h.name, h.attempts_made, h.max_attempts, h.trace, h.job_priority, h.handed_at)
      select task_id, name, attempts_made, max_attempts, trace, job_priority, null::timestamptz as next_run_at
      from (select * from taken order by job_priority, handed_at, task_id) t
      union all
      select null, null, null, null, null, null,
             (select min(h.run_at) from task_handouts h where ${this.pg.unsafe(FREE)} and h.run_at > now())
      where (select count(*) from taken) < ${limit}`;
    const jobs: TakenJob[] = [];
    let nextRunAt: Date | null = null;
    for (const r of rows) {
      if (r.task_id === null) {
        nextRunAt = r.next_run_at === null ? null : new Date(r.next_run_at);
        continue;
      }
      jobs.push({
        taskId: r.task_id,
        name: r.name ?? '',
        attemptsMade: r.attempts_made ?? 0,
        maxAttempts: r.max_attempts ?? 1,
        trace: r.trace,
      });
    }
    return { jobs, nextRunAt };
  }

  /**
   * A job `worker` holds goes back to waiting: at once (`runAt` null: handed back on shutdown), or
   * from `runAt` (delayed again: a paused type, a task not due yet, a retry's backoff). `failed`:
   * the attempt ended in an error (counted: `attemptsMade` + 1); with `failedReason` the queue
   * gives up on the job instead. False if the worker no longer held it (its lease lapsed).
   */
  async release(
    taskId: string,
    worker: string,
    {
      runAt = null,
      failed = false,
      failedReason = null,
    }: { runAt?: Date | null; failed?: boolean; failedReason?: string | null } = {},
  ): Promise<boolean> {
    // Only a job another worker may take now is announced: a delayed one is found by the takes'
    // `nextRunAt` (the releasing worker takes again at once) or by the next poll, and a given-up
    // one by the sweeper.
    const announce = runAt === null && failedReason === null;
    const rows = await this.pg`
      with released as (
        update task_handouts h set locked_by = null, locked_until = null, run_at = ${runAt?.toISOString() ?? null}::timestamptz,
          attempts_made = h.attempts_made + ${failed ? 1 : 0}, failed_reason = ${failedReason}
        where h.task_id = ${taskId} and h.locked_by = ${worker}
        returning 1)
      ${this.pg.unsafe(announce ? notify : 'select')} from released`;
    return rows.length > 0;
  }

  /** Renews `worker`'s leases on these jobs; the ids it still holds. */
  async extend(worker: string, taskIds: readonly string[], lockMs: number): Promise<Set<string>> {
    if (taskIds.length === 0) return new Set();
    const rows = await this.pg<{ task_id: string }[]>`
      update task_handouts h set locked_until = now() + ${lockMs} * interval '1 millisecond'
      where h.task_id = any(${column(taskIds, (id) => id)}::uuid[]) and h.locked_by = ${worker}
      returning h.task_id`;
    return new Set(rows.map((r) => r.task_id));
  }

  /**
   * Jobs whose lease lapsed over `graceMs` ago (their worker died, or lost PostgreSQL for longer
   * than that: the grace lets a worker back from an outage renew its leases first) go back to
   * waiting, one stall more; past `maxStalls` the queue gives up on them. Which, and how.
   */
  async reclaimStalled(maxStalls: number, graceMs: number): Promise<{ taskId: string; failed: boolean }[]> {
    const rows = await this.pg<{ task_id: string; failed: boolean }[]>`
      with lapsed as (
        select h.task_id from task_handouts h
        where h.locked_by is not null and h.locked_until < now() - ${graceMs} * interval '1 millisecond'
        for update skip locked),
      reclaimed as (
        update task_handouts h set locked_by = null, locked_until = null, stalls = h.stalls + 1,
          failed_reason = case when h.stalls + 1 > ${maxStalls} then 'job stalled more than allowable limit' end
        from lapsed where h.task_id = lapsed.task_id
        returning h.task_id, h.failed_reason is not null as failed)
      select task_id, failed from reclaimed`;
    if (rows.length > 0) await this.wake();
    return rows.map((r) => ({ taskId: r.task_id, failed: r.failed }));
  }

  /** Deletes these jobs where `worker` still holds them (their processing ended). */
  async forget(taskIds: readonly string[], worker: string): Promise<void> {
    if (taskIds.length === 0) return;
    await this.pg`
      delete from task_handouts where task_id = any(${column(taskIds, (id) => id)}::uuid[]) and locked_by = ${worker}`;
  }

  /** Where each task's job stands. */
  async inspect(ids: readonly string[]): Promise<Map<string, JobState>> {
    const states = new Map<string, JobState>(ids.map((id) => [id, 'missing']));
    if (ids.length === 0) return states;
    const rows = await this.pg<{ task_id: string; failed: boolean }[]>`
      select task_id, failed_reason is not null as failed from task_handouts
      where task_id = any(${column(ids, (id) => id)}::uuid[])`;
    for (const r of rows) states.set(r.task_id, r.failed ? 'failed' : 'queued');
    return states;
  }

  /** Why the queue gave up on this task's job, if it did. */
  async failedReason(taskId: string): Promise<string | undefined> {
    const [row] = await this.pg<{ failed_reason: string | null }[]>`
      select failed_reason from task_handouts where task_id = ${taskId}`;
    return row?.failed_reason ?? undefined;
  }

  /** How many jobs wait, wait for their time, are held by a worker, and were given up on. */
  async counts(): Promise<JobCounts> {
    const [row] = await this.pg<(Omit<JobCounts, 'paused'> & { paused: boolean | null })[]>`
      select (select paused from queue_state) as paused,
             (count(*) filter (where ${this.pg.unsafe(FREE)} and (h.run_at is null or h.run_at <= now())))::int as waiting,
             (count(*) filter (where ${this.pg.unsafe(FREE)} and h.run_at > now()))::int as delayed,
             (count(*) filter (where h.locked_by is not null))::int as active,
             (count(*) filter (where h.failed_reason is not null))::int as failed
      from task_handouts h`;
    return {
      paused: row?.paused ?? false,
      waiting: row?.waiting ?? 0,
      delayed: row?.delayed ?? 0,
      active: row?.active ?? 0,
      failed: row?.failed ?? 0,
    };
  }

  /** Deletes the jobs of this type that no worker holds (a paused type's); how many. */
  async removeQueuedOfType(name: string): Promise<number> {
    const rows = await this.pg`
      delete from task_handouts h where h.name = ${name} and h.locked_by is null returning h.task_id`;
    return rows.length;
  }

  /** Pauses or resumes the whole queue: a paused queue hands no job to a worker (running ones go on). */
  async setPaused(paused: boolean): Promise<void> {
    await this.pg`
      insert into queue_state (id, paused) values (true, ${paused})
      on conflict (id) do update set paused = excluded.paused`;
    if (!paused) await this.wake();
  }

  async isPaused(): Promise<boolean> {
    const [row] = await this.pg<{ paused: boolean }[]>`select paused from queue_state`;
    return row?.paused ?? false;
  }
}
