import { randomUUID } from 'node:crypto';
import { Batcher, JOBS_CHANNEL, JobQueries, type TakenJob } from '@tasker/db';
import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import type postgres from 'postgres';
import {
  type Deliverable,
  jobPriority,
  type QueueJob,
  type QueueState,
  retryDelay,
  type TaskProcessor,
  type TaskQueue,
  type TaskWorker,
  type TaskWorkerOptions,
} from './queue.ts';

/**
 * The PostgreSQL-only mode's queue: the handouts table (`JobQueries`, migration 0036). A task's job
 * is its handout: written by the dispatcher, deleted by the commit that finishes the task. So the
 * queue costs no writes of its own beyond a worker's lease on the handouts it takes, a batch at a
 * time (docs/architecture.md, "The PostgreSQL-only queue").
 */
export interface PostgresQueueConnection {
  kind: 'postgres';
  /** Statements (the process's pool: a pooler is fine). */
  sql: postgres.Sql;
  /** LISTEN (PostgreSQL itself: a session of its own). */
  listen: postgres.Sql;
}

export class PostgresTaskQueue implements TaskQueue {
  private readonly jobs: JobQueries;

  constructor(connection: PostgresQueueConnection) {
    this.jobs = new JobQueries(connection.sql);
  }

  async waitUntilReady(): Promise<void> {}

  async enqueue(tasks: readonly Deliverable[]): Promise<void> {
    const now = Date.now();
    await this.jobs.enqueue(
      tasks.map((task) => ({
        id: task.id,
        priority: jobPriority(task),
        runAt: task.runAfter && task.runAfter.getTime() > now ? task.runAfter : null,
      })),
    );
  }

  /** The dispatcher wrote the handouts, which are the jobs: the workers are told. */
  async handedOut(tasks: readonly Deliverable[]): Promise<void> {
    if (tasks.length > 0) await this.jobs.wake();
  }

  inspect(ids: readonly string[]) {
    return this.jobs.inspect(ids);
  }

  failedReason(id: string): Promise<string | undefined> {
    return this.jobs.failedReason(id);
  }

  pause(): Promise<void> {
    return this.jobs.setPaused(true);
  }

  resume(): Promise<void> {
    return this.jobs.setPaused(false);
  }

  isPaused(): Promise<boolean> {
    return this.jobs.isPaused();
  }

  state(): Promise<QueueState> {
    return this.jobs.counts();
  }

  removeQueuedOfType(name: string): Promise<number> {
    return this.jobs.removeQueuedOfType(name);
  }

  /**
   * Nothing to do: a job is its task's handout, which the commit that ends the task deletes (a
   * cancel, an expiry), and a finished task's retry is handed out afresh by the dispatcher.
   */
  async remove(_id: string): Promise<void> {}

  async replace(task: Deliverable): Promise<void> {
    await this.jobs.replace({
      id: task.id,
      priority: jobPriority(task),
      runAt: task.runAfter && task.runAfter.getTime() > Date.now() ? task.runAfter : null,
    });
  }

  async close(): Promise<void> {}
}

/** The most jobs one statement takes. */
const TAKE_MAX = 100;
/** How often an idle worker looks for jobs with no wake-up (a lost NOTIFY, a delayed job due). */
const POLL_MS = 1000;
/** How soon a LISTEN that failed is tried again. */
const LISTEN_RETRY_MS = 5000;

type Listener<A extends unknown[]> = (...args: A) => void;

/**
 * A worker of the PostgreSQL-only queue, with BullMQ's Worker's contract for the processor: it
 * resolves once the task's outcome is recorded; `DelayedError` and `WaitingError` after
 * `moveToDelayed`/`moveToWait`; `UnrecoverableError` or the last attempt's error gives the job up;
 * any other error retries it after its backoff. Up to `concurrency` jobs at once; free slots are
 * filled a batch at a time (one statement), when jobs are queued (a NOTIFY), when a slot frees while
 * jobs are left, and every second. Leases are renewed every `lockDuration / 2`; every
 * `stalledInterval` the leases that lapsed over a `lockDuration` ago (their worker died) are taken
 * back, and after `maxStalledCount` such stalls the job is given up.
 */
export class PostgresTaskWorker implements TaskWorker {
  private readonly jobs: JobQueries;
  /** This worker's lease holder: its name and a start's own suffix (a pid may recur). */
  private readonly holder: string;
  private readonly active = new Map<string, AbortController>();
  private readonly finishing = new Set<Promise<void>>();
  private readonly done: Batcher<string, void>;
  private readonly errorListeners: Listener<[Error]>[] = [];
  private readonly stalledListeners: Listener<[string]>[] = [];
  private fetching = false;
  /** The take in flight, if any (awaited by `close`). */
  private taking: Promise<void> | undefined;
  private again = false;
  /** The last take found no more due jobs: a freed slot waits for a wake-up. */
  private drained = false;
  private closing = false;
  private ready: Promise<void> | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private dueTimer: NodeJS.Timeout | undefined;
  private extendTimer: NodeJS.Timeout | undefined;
  private listenTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: PostgresQueueConnection,
    private readonly processor: TaskProcessor,
    private readonly options: TaskWorkerOptions,
  ) {
    this.jobs = new JobQueries(connection.sql);
    this.holder = `${options.name ?? 'worker'}:${randomUUID().slice(0, 8)}`;
    // A job whose processor resolved leaves the queue. Its handout is gone already when the task
    // ended (or waits); this deletes one left under a task that did not (a delivery repeated).
    this.done = new Batcher(
      async (ids) => {
        await this.jobs.forget(ids, this.holder);
        return ids.map(() => undefined);
      },
      (id) => id,
      { maxSize: 500 },
    );
    // It starts at once, as BullMQ's Worker does.
    this.waitUntilReady().catch((error: unknown) => this.error(error));
  }

  on(event: 'error', listener: Listener<[Error]>): this;
  on(event: 'stalled', listener: Listener<[string]>): this;
  on(event: 'error' | 'stalled', listener: Listener<[Error]> | Listener<[string]>): this {
    if (event === 'error') this.errorListeners.push(listener as Listener<[Error]>);
    else this.stalledListeners.push(listener as Listener<[string]>);
    return this;
  }

  private error(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    for (const listener of this.errorListeners) listener(err);
  }

  waitUntilReady(): Promise<void> {
    this.ready ??= this.start();
    return this.ready;
  }

  private async start(): Promise<void> {
    if (this.closing) return;
    const { lockDuration, stalledInterval } = this.options;
    this.timers.push(
      setInterval(() => this.wake(), POLL_MS),
      setInterval(() => void this.reclaim(), stalledInterval),
    );
    // Kept until the last running job ends, also while closing.
    this.extendTimer = setInterval(() => void this.extend(), Math.max(50, lockDuration / 2));
    await this.listen();
    this.wake();
  }

  /**
   * Wake-ups (postgres.js reconnects a LISTEN once made). If it cannot be made now (PostgreSQL
   * away), the worker polls meanwhile and tries again every few seconds.
   */
  private async listen(): Promise<void> {
    try {
      const { unlisten } = await this.connection.listen.listen(JOBS_CHANNEL, () => this.wake());
      if (this.closing) await unlisten().catch(() => {});
      else this.unlisten = unlisten;
    } catch (error) {
      this.error(error);
      if (!this.closing) this.listenTimer = setTimeout(() => void this.listen(), LISTEN_RETRY_MS);
    }
  }

  /** Jobs may be there: take some, if slots are free. */
  private wake(): void {
    this.drained = false;
    this.pump();
  }

  private pump(): void {
    if (this.closing || this.drained) return;
    const free = this.options.concurrency - this.active.size;
    if (free <= 0) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    const limit = Math.min(free, TAKE_MAX);
    this.taking = this.jobs
      .take(this.holder, limit, this.options.lockDuration)
      .then(
        async ({ jobs, nextRunAt }) => {
          if (this.closing) {
            // Taken as the worker closed: back to the queue at once, untouched.
            await Promise.all(jobs.map((job) => this.jobs.release(job.taskId, this.holder))).catch(
              (error: unknown) => this.error(error),
            );
            return;
          }
          for (const job of jobs) this.run(job);
          if (jobs.length < limit) {
            this.drained = true;
            this.dueAt(nextRunAt);
          }
        },
        (error: unknown) => {
          // PostgreSQL away: wait for the next poll rather than ask again at once.
          this.drained = true;
          this.error(error);
        },
      )
      .finally(() => {
        this.fetching = false;
        if (this.again && !this.closing) {
          this.again = false;
          this.drained = false;
        }
        this.pump();
      });
  }

  /** Looks again when the soonest delayed job is due (sooner than the next poll). */
  private dueAt(at: Date | null): void {
    clearTimeout(this.dueTimer);
    if (!at) return;
    const ms = at.getTime() - Date.now();
    if (ms < POLL_MS) this.dueTimer = setTimeout(() => this.wake(), Math.max(0, ms));
  }

  private run(taken: TakenJob): void {
    const controller = new AbortController();
    this.active.set(taken.taskId, controller);
    const job = this.jobOf(taken);
    const finished = this.settle(taken, job, controller.signal).finally(() => {
      this.active.delete(taken.taskId);
      this.finishing.delete(finished);
      this.pump();
    });
    this.finishing.add(finished);
  }

  private jobOf(taken: TakenJob): QueueJob {
    const { jobs, holder } = this;
    return {
      id: taken.taskId,
      name: taken.name,
      data: { taskId: taken.taskId, ...(taken.trace ?? {}) },
      attemptsMade: taken.attemptsMade,
      opts: { attempts: taken.maxAttempts },
      async moveToDelayed(timestamp: number) {
        await jobs.release(taken.taskId, holder, { runAt: new Date(timestamp) });
      },
      async moveToWait() {
        await jobs.release(taken.taskId, holder);
      },
    };
  }

  /** Runs the processor and records what its outcome means for the job. */
  private async settle(taken: TakenJob, job: QueueJob, signal: AbortSignal): Promise<void> {
    try {
      await this.processor(job, this.holder, signal);
      await this.done.add(taken.taskId);
    } catch (error) {
      try {
        if (error instanceof DelayedError || error instanceof WaitingError) return;
        const reason = error instanceof Error ? error.message : String(error);
        const attemptsMade = taken.attemptsMade + 1;
        if (error instanceof UnrecoverableError || attemptsMade >= taken.maxAttempts) {
          await this.jobs.release(taken.taskId, this.holder, {
            failed: true,
            failedReason: reason || 'failed',
          });
          return;
        }
        const delay = retryDelay(taken.name, attemptsMade, error);
        await this.jobs.release(taken.taskId, this.holder, {
          failed: true,
          runAt: new Date(Date.now() + Math.max(0, delay)),
        });
      } catch (recording) {
        // PostgreSQL away: the lease lapses and the job is taken again (a stall, counted).
        this.error(recording);
      }
    }
  }

  private async extend(): Promise<void> {
    const ids = [...this.active.keys()];
    if (ids.length === 0) return;
    try {
      const held = await this.jobs.extend(this.holder, ids, this.options.lockDuration);
      const lost = ids.filter((id) => !held.has(id) && this.active.has(id));
      if (lost.length > 0)
        this.error(new Error(`lost the lease of ${lost.length} running jobs: ${lost.join(', ')}`));
    } catch (error) {
      this.error(error);
    }
  }

  private async reclaim(): Promise<void> {
    if (this.closing) return;
    try {
      for (const { taskId } of await this.jobs.reclaimStalled(
        this.options.maxStalledCount,
        this.options.lockDuration,
      ))
        for (const listener of this.stalledListeners) listener(taskId);
    } catch (error) {
      this.error(error);
    }
  }

  cancelJob(jobId: string, reason?: string): boolean {
    const controller = this.active.get(jobId);
    if (!controller) return false;
    controller.abort(reason);
    return true;
  }

  cancelAllJobs(reason?: string): void {
    for (const controller of this.active.values()) controller.abort(reason);
  }

  /** Takes no more jobs and waits for the running ones (`cancelAllJobs` hands them back sooner). */
  async close(): Promise<void> {
    this.closing = true;
    await this.ready?.catch(() => {});
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.dueTimer);
    clearTimeout(this.listenTimer);
    await this.taking;
    while (this.finishing.size > 0) await Promise.allSettled([...this.finishing]);
    clearInterval(this.extendTimer);
    await this.unlisten?.().catch(() => {});
  }
}
