import type { StaleTask, TaskRow } from '@tasker/db';
import { getTaskDefinition, retryAfterOf } from '@tasker/tasks';
import {
  type BackendFactory,
  type BackoffStrategy,
  Backoffs,
  createRedisBackend,
  type IQueueBackend,
  type JobProgress,
  type JobsOptions,
  Queue,
  Worker,
} from 'bullmq';
import { z } from 'zod';
import { QUEUE_NAME } from './keys.ts';
import { currentTraceCarrier, type TraceCarrier } from './observability/tracing.ts';
import { type PostgresQueueConnection, PostgresTaskQueue, PostgresTaskWorker } from './postgres-queue.ts';
import type { RedisClient } from './redis.ts';

/**
 * The payload of every BullMQ job. The task's input stays in PostgreSQL; the job id is the task id.
 * With tracing on, the submitting request's W3C trace context rides along, so that the worker's
 * attempt span joins the request's trace (on both backends, and through the batched addBulk).
 */
export const jobDataSchema = z.object({
  taskId: z.uuid(),
  traceparent: z.string().max(256).optional(),
  tracestate: z.string().max(512).optional(),
});
export type JobData = z.output<typeof jobDataSchema>;

export type Deliverable = Pick<
  TaskRow | StaleTask,
  'id' | 'name' | 'priority' | 'runAfter' | 'maxAttempts'
> & {
  /** Its place among its tenant's tasks in flight (the dispatcher's `Pick.order`): the job's priority. */
  order?: number;
};
/** A task to deliver, with the trace context active when its enqueue was asked for. */
type Traced = Deliverable & { trace?: TraceCarrier };

const jobData = (task: Traced): JobData =>
  task.trace ? { taskId: task.id, ...task.trace } : { taskId: task.id };

/** Task priorities: 0 (default) to 100, higher first. */
export const MAX_PRIORITY = 100;
/** BullMQ's largest job priority (2^21 - 1). */
const MAX_JOB_PRIORITY = 2_097_151;

/**
 * The job's backoff types: BullMQ's own `exponential` and `fixed` (with jitter), each under a name of
 * ours so that BullMQ asks the workers' `backoffStrategy` for every retry's delay. That strategy
 * answers the type's own delay, unless the handler's error asked for a wait of its own (a
 * provider's `retry-after`: `retryAfterMs`, see `retryAfterOf` in @tasker/tasks), which wins.
 */
const BACKOFF_TYPES = { 'tasker-exponential': 'exponential', 'tasker-fixed': 'fixed' } as const;
/** The share of a retry's delay drawn at random (BullMQ's `jitter`). */
const BACKOFF_JITTER = 0.5;

/**
 * Every task worker's BullMQ `settings.backoffStrategy` (`createTaskWorker`): the delay before the
 * next attempt of a job whose attempt failed with `err`.
 */
export const backoffStrategy: BackoffStrategy = (attemptsMade, type, err, job) => {
  const asked = retryAfterOf(err);
  if (asked !== undefined) return asked;
  const builtin =
    type !== undefined && Object.hasOwn(BACKOFF_TYPES, type)
      ? BACKOFF_TYPES[type as keyof typeof BACKOFF_TYPES]
      : undefined;
  const make = builtin && Backoffs.builtinStrategies[builtin];
  const backoff = job?.opts.backoff;
  if (!make || typeof backoff !== 'object') throw new Error(`unknown backoff type ${type}`);
  return make(backoff.delay ?? 0, backoff.jitter)(attemptsMade, builtin, err, job);
};

/**
 * The delay before the next attempt of a task of type `name` whose attempt number `attemptsMade`
 * failed with `err` (the PostgreSQL-only queue's retries): the same answer `backoffStrategy` gives
 * BullMQ, read from the type's definition instead of a job's stored options.
 */
export function retryDelay(name: string, attemptsMade: number, err: unknown): number {
  const error = err instanceof Error ? err : new Error(String(err));
  const asked = retryAfterOf(error);
  if (asked !== undefined) return asked;
  const backoff = getTaskDefinition(name)?.retry?.backoff;
  const make = backoff && Backoffs.builtinStrategies[backoff.type];
  if (!backoff || !make) return 0;
  return Number(make(backoff.delayMs, BACKOFF_JITTER)(attemptsMade, backoff.type, error));
}

/**
 * BullMQ options for a task row: retries and backoff from its definition, delay from run_after,
 * and a priority (1 is first): the dispatcher's order (the task's place among its tenant's tasks in
 * flight, so that tenants alternate), else the task's own priority mapped onto BullMQ's (a job the
 * sweeper adds again). Every job gets one: BullMQ runs jobs without a priority before all
 * prioritized ones.
 */
export function jobOptions(task: Deliverable, now = Date.now()): JobsOptions {
  const retry = getTaskDefinition(task.name)?.retry;
  const delay = task.runAfter ? task.runAfter.getTime() - now : 0;
  return {
    jobId: task.id,
    attempts: task.maxAttempts,
    backoff: retry
      ? { type: `tasker-${retry.backoff.type}`, delay: retry.backoff.delayMs, jitter: BACKOFF_JITTER }
      : undefined,
    delay: delay > 0 ? delay : undefined,
    priority: jobPriority(task),
    // PostgreSQL keeps every result; Redis only needs unfinished jobs (and the jobs BullMQ itself gave
    // up on, e.g. stalled too often, for the sweeper and for inspection). A job whose outcome the
    // worker recorded in PostgreSQL (completed, failed for good, cancelled) completes.
    removeOnComplete: true,
    removeOnFail: { age: 24 * 3600, count: 10_000 },
  };
}

/** A job's place in the queue, 1 first: the dispatcher's order, else the task's priority turned round. */
export function jobPriority(task: Deliverable): number {
  return task.order !== undefined
    ? Math.min(MAX_JOB_PRIORITY, Math.max(1, task.order))
    : MAX_PRIORITY + 1 - Math.min(MAX_PRIORITY, Math.max(0, task.priority));
}

export interface QueueState {
  paused: boolean;
  /** Queued and ready to run (or held by the pause). */
  waiting: number;
  /** Waiting for their start time or a retry's backoff. */
  delayed: number;
  active: number;
  /**
   * Jobs the queue gave up on: their tasks are FAILED (or ended FAILED by the next sweep). BullMQ on
   * Redis keeps them 24 h for inspection; a handout goes with its task's end.
   */
  failed: number;
}

/**
 * Where the jobs are: BullMQ on Redis or a Redis Cluster (`prefix` namespaces its keys; hash-tagged
 * on a cluster), or the handouts table in Tasker's database (PostgreSQL-only mode: `PostgresTaskQueue`).
 */
export type QueueConnection = { kind: 'redis'; redis: RedisClient; prefix: string } | PostgresQueueConnection;

type RedisQueueConnection = Extract<QueueConnection, { kind: 'redis' }>;
type AnyBackendFactory = BackendFactory<IQueueBackend, unknown>;
type TaskQueueOf = Queue<JobData, unknown, string, JobData, unknown, string, IQueueBackend, unknown>;

/** The options and backend factory of a BullMQ `Queue` or `Worker` on this Redis connection. */
export function bullmqConnection(connection: RedisQueueConnection): {
  options: { connection: unknown; prefix?: string };
  backend: AnyBackendFactory;
} {
  return {
    options: { connection: connection.redis, prefix: connection.prefix },
    backend: createRedisBackend as AnyBackendFactory,
  };
}

/**
 * What a worker hands its processor: BullMQ's `Job` on Redis, the handout's job in PostgreSQL-only
 * mode. `data` is read back from the queue: the processor parses it (`jobDataSchema`).
 */
export interface QueueJob {
  readonly id?: string | undefined;
  readonly name: string;
  readonly data: unknown;
  /** Attempts that ended in an error and asked for a retry. */
  readonly attemptsMade: number;
  readonly opts: { readonly attempts?: number | undefined };
  /** Back to waiting until `timestamp` (then throw `DelayedError`). */
  moveToDelayed(timestamp: number, token?: string): Promise<void>;
  /** Back to waiting now, uncounted (then throw `WaitingError`). */
  moveToWait(token?: string): Promise<unknown>;
}

/** A worker's processor, with BullMQ's contract (see `PostgresTaskWorker`). */
export type TaskProcessor = (
  job: QueueJob,
  token: string | undefined,
  signal?: AbortSignal,
) => Promise<unknown>;

export interface TaskWorkerOptions {
  concurrency: number;
  /** How long a job's lock (lease) lasts unless renewed (renewed at half of it). */
  lockDuration: number;
  /** How often lapsed locks are looked for. */
  stalledInterval: number;
  /** Stalls (a lock that lapsed: its worker died) a job survives; the next fails it. */
  maxStalledCount: number;
  name?: string;
}

/** A worker of the task queue, on either backend. */
export interface TaskWorker {
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'stalled', listener: (jobId: string) => void): unknown;
  waitUntilReady(): Promise<unknown>;
  /** Fires the signal of a job this worker runs, with `reason`; false when it runs no such job. */
  cancelJob(jobId: string, reason?: string): boolean;
  cancelAllJobs(reason?: string): void;
  /** Takes no more jobs; resolves once the running ones have ended. */
  close(): Promise<void>;
}

/** Consumer side of the queue: the worker process's (and tests'). */
export function createTaskWorker(
  connection: QueueConnection,
  processor: TaskProcessor,
  options: TaskWorkerOptions,
): TaskWorker {
  if (connection.kind === 'postgres') return new PostgresTaskWorker(connection, processor, options);
  const { options: where, backend } = bullmqConnection(connection);
  const worker = new Worker<JobData, unknown, string, IQueueBackend, JobProgress, unknown>(
    QUEUE_NAME,
    processor,
    { ...options, ...where, settings: { backoffStrategy } },
    backend,
  );
  return new BullmqTaskWorker(worker);
}

class BullmqTaskWorker implements TaskWorker {
  constructor(
    private readonly worker: Worker<JobData, unknown, string, IQueueBackend, JobProgress, unknown>,
  ) {}

  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'stalled', listener: (jobId: string) => void): this;
  on(event: 'error' | 'stalled', listener: ((error: Error) => void) | ((jobId: string) => void)): this {
    if (event === 'error') this.worker.on('error', listener as (error: Error) => void);
    else this.worker.on('stalled', listener as (jobId: string) => void);
    return this;
  }

  waitUntilReady(): Promise<unknown> {
    return this.worker.waitUntilReady();
  }

  cancelJob(jobId: string, reason?: string): boolean {
    return this.worker.cancelJob(jobId, reason);
  }

  cancelAllJobs(reason?: string): void {
    this.worker.cancelAllJobs(reason);
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}

/**
 * The producer's side of the queue: the server (recovery and pauses), the worker (the dispatcher's
 * hand-outs, the sweeper). BullMQ on Redis (`BullmqTaskQueue`) or the handouts table
 * (`PostgresTaskQueue`, PostgreSQL-only mode).
 */
export interface TaskQueue {
  waitUntilReady(): Promise<void>;
  /** Adds the jobs of these tasks. A task whose job already exists is left alone. */
  enqueue(tasks: readonly Deliverable[]): Promise<void>;
  /** The dispatcher wrote these tasks' handouts (with their order): their jobs are to run. */
  handedOut(tasks: readonly Deliverable[]): Promise<void>;
  /**
   * Where each task's job stands: `missing` (no job: never added, or the queue lost it), `failed`
   * (the queue gave up on it) or `queued` (waiting, delayed or active).
   */
  inspect(ids: readonly string[]): Promise<Map<string, 'missing' | 'failed' | 'queued'>>;
  /** Why the queue gave up on a job, if it did and still keeps it. */
  failedReason(id: string): Promise<string | undefined>;
  /** Stops every worker from starting queued tasks (running ones finish); nothing queued is lost. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  isPaused(): Promise<boolean>;
  /** Whether processing is paused, and how many jobs wait in each state. */
  state(): Promise<QueueState>;
  /** Removes the queued (not running) jobs of one task type (a paused type's); how many. */
  removeQueuedOfType(name: string): Promise<number>;
  /** Removes a task's job unless a worker holds it (then the worker's cancellation applies). */
  remove(id: string): Promise<void>;
  /** Queues a task that runs again under the same id, any job left under it removed first. */
  replace(task: Deliverable, options?: { waitMs?: number }): Promise<void>;
  close(): Promise<void>;
}

/** The queue on either backend. */
export function createTaskQueue(
  connection: QueueConnection,
  onError: (error: Error) => void = () => {},
): TaskQueue {
  if (connection.kind === 'postgres') return new PostgresTaskQueue(connection);
  const queue = new BullmqTaskQueue(connection);
  queue.queue.on('error', onError);
  return queue;
}

/** The queue as BullMQ on Redis. */
export class BullmqTaskQueue implements TaskQueue {
  readonly queue: TaskQueueOf;

  constructor(private readonly connection: RedisQueueConnection) {
    const { options, backend } = bullmqConnection(connection);
    this.queue = new Queue<JobData, unknown, string, JobData, unknown, string, IQueueBackend, unknown>(
      QUEUE_NAME,
      options,
      backend,
    );
  }

  async waitUntilReady(): Promise<void> {
    await this.queue.waitUntilReady();
  }

  private async addBulk(tasks: readonly Traced[]): Promise<void> {
    const now = Date.now();
    await this.queue.addBulk(
      tasks.map((task) => ({ name: task.name, data: jobData(task), opts: jobOptions(task, now) })),
    );
  }

  /**
   * Fail fast rather than wait for a Redis reconnect (BullMQ would wait forever): request paths
   * must answer, and the caller decides what a failed queue operation means. (PostgreSQL's pool
   * fails a query at once when the server is away.)
   */
  private ensureConnected(): void {
    const { redis } = this.connection;
    if (redis.status !== 'ready') throw new Error(`Redis is not connected (${redis.status})`);
  }

  private get ready(): boolean {
    return this.connection.redis.status === 'ready';
  }

  /** Adds the jobs. A task whose job already exists is left alone (BullMQ ignores a known jobId). */
  async enqueue(tasks: readonly Deliverable[]): Promise<void> {
    if (tasks.length === 0) return;
    this.ensureConnected();
    // Taken now, in the caller's context: a batched add runs later, outside it.
    const trace = currentTraceCarrier();
    const [only] = tasks;
    if (tasks.length === 1 && only) {
      const task: Traced = trace ? { ...only, trace } : only;
      // One job: a plain add, no MULTI (which costs more than the add itself).
      await this.queue.add(only.name, jobData(task), jobOptions(only));
      return;
    }
    await this.addBulk(trace ? tasks.map((task) => ({ ...task, trace })) : tasks);
  }

  handedOut(tasks: readonly Deliverable[]): Promise<void> {
    return this.enqueue(tasks);
  }

  /**
   * Jobs complete only once their outcome is in PostgreSQL and are then removed, so a completed job
   * under an unfinished row counts as missing.
   */
  async inspect(ids: readonly string[]): Promise<Map<string, 'missing' | 'failed' | 'queued'>> {
    const states = new Map<string, 'missing' | 'failed' | 'queued'>();
    // One round trip (auto-pipelined).
    const found = await Promise.all(ids.map((id) => this.queue.getJobState(id)));
    ids.forEach((id, i) => {
      const state = found[i];
      states.set(
        id,
        state === 'unknown' || state === 'completed' ? 'missing' : state === 'failed' ? 'failed' : 'queued',
      );
    });
    return states;
  }

  /** Why BullMQ failed a job, if it still has it. */
  async failedReason(id: string): Promise<string | undefined> {
    const job = await this.queue.getJob(id);
    return job?.failedReason || undefined;
  }

  /** Stops every worker from starting queued tasks (running ones finish); nothing queued is lost. */
  async pause(): Promise<void> {
    this.ensureConnected();
    await this.queue.pause();
  }

  async resume(): Promise<void> {
    this.ensureConnected();
    await this.queue.resume();
  }

  /** Whether processing is paused (BullMQ's pause of the whole queue). */
  isPaused(): Promise<boolean> {
    this.ensureConnected();
    return this.queue.isPaused();
  }

  /** Whether processing is paused, and how many jobs wait in each state. */
  async state(): Promise<QueueState> {
    this.ensureConnected();
    const [paused, counts] = await Promise.all([
      this.queue.isPaused(),
      this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed'),
    ]);
    return {
      paused,
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      delayed: counts.delayed ?? 0,
      active: counts.active ?? 0,
      failed: counts.failed ?? 0,
    };
  }

  /**
   * Removes the queued (not running) jobs of one task type: their rows stay PENDING in PostgreSQL,
   * which is all a paused type needs; resuming enqueues them again. Returns how many.
   */
  async removeQueuedOfType(name: string): Promise<number> {
    this.ensureConnected();
    // Collect first, remove after, so that removing does not shift the pages being read. A job
    // missed here (queued meanwhile) is dropped by the worker's own paused check instead.
    const ids: string[] = [];
    for (const state of ['wait', 'prioritized', 'delayed'] as const) {
      for (let start = 0; ; start += 500) {
        const jobs = await this.queue.getJobs(state, start, start + 499, true);
        for (const job of jobs) if (job?.name === name && job.id) ids.push(job.id);
        if (jobs.length < 500) break;
      }
    }
    for (const id of ids) await this.queue.remove(id).catch(() => 0);
    return ids.length;
  }

  /** Removes a task's job unless a worker holds it (then the worker's cancellation applies). */
  async remove(id: string): Promise<void> {
    if (!this.ready) return; // no Redis: nothing to remove from now
    await this.queue.remove(id).catch(() => 0);
  }

  /**
   * Queues a task that runs again under the same id (a retry by hand, or a job the sweeper found
   * left over from an earlier round): any job still under that id is removed first, waiting for a
   * worker that still holds it to let go, since BullMQ ignores an add whose job id exists. Throws
   * when the old job cannot be removed in time; the sweeper then replaces it later.
   */
  async replace(task: Deliverable, { waitMs = 3000 } = {}): Promise<void> {
    this.ensureConnected();
    const deadline = Date.now() + waitMs;
    for (;;) {
      await this.queue.remove(task.id).catch(() => 0);
      if (!(await this.queue.getJob(task.id))) break;
      if (Date.now() > deadline) throw new Error(`the old job of task ${task.id} is still held by a worker`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.enqueue([task]);
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
