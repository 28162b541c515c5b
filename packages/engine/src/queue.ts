import { Batcher, postgresConnection, type StaleTask, type TaskRow } from '@tasker/db';
import { getTaskDefinition, retryAfterOf } from '@tasker/tasks';
import {
  type BackendFactory,
  type BackoffStrategy,
  Backoffs,
  createPostgresBackend,
  createRedisBackend,
  type IQueueBackend,
  type JobProgress,
  type JobsOptions,
  type Processor,
  Queue,
  Worker,
  type WorkerOptions,
} from 'bullmq';
import pg from 'pg';
import { z } from 'zod';
import { postgresNames, QUEUE_NAME } from './keys.ts';
import { currentTraceCarrier, type TraceCarrier } from './observability/tracing.ts';
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

type Deliverable = Pick<TaskRow | StaleTask, 'id' | 'name' | 'priority' | 'runAfter' | 'maxAttempts'> & {
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
      ? { type: `tasker-${retry.backoff.type}`, delay: retry.backoff.delayMs, jitter: 0.5 }
      : undefined,
    delay: delay > 0 ? delay : undefined,
    priority:
      task.order !== undefined
        ? Math.min(MAX_JOB_PRIORITY, Math.max(1, task.order))
        : MAX_PRIORITY + 1 - Math.min(MAX_PRIORITY, Math.max(0, task.priority)),
    // PostgreSQL keeps every result; Redis only needs unfinished jobs (and the jobs BullMQ itself gave
    // up on, e.g. stalled too often, for the sweeper and for inspection). A job whose outcome the
    // worker recorded in PostgreSQL (completed, failed for good, cancelled) completes.
    removeOnComplete: true,
    removeOnFail: { age: 24 * 3600, count: 10_000 },
  };
}

export interface QueueState {
  paused: boolean;
  /** Queued and ready to run (or held by the pause). */
  waiting: number;
  /** Waiting for their start time or a retry's backoff. */
  delayed: number;
  active: number;
  /** Jobs BullMQ still keeps as failed (their tasks are FAILED; kept 24 h for inspection). */
  failed: number;
}

/**
 * Where BullMQ keeps the jobs: Redis or a Redis Cluster (`prefix` namespaces its keys; hash-tagged
 * on a cluster), or BullMQ's PostgreSQL backend in Tasker's database (schema `bullmq`, migrated by
 * BullMQ itself; its own `pg` pool of `poolSize` connections plus one `LISTEN` connection per
 * queue or worker).
 */
export type QueueConnection =
  | { kind: 'redis'; redis: RedisClient; prefix: string }
  | { kind: 'postgres'; url: string; poolSize: number };

type AnyBackendFactory = BackendFactory<IQueueBackend, unknown>;

/**
 * node-postgres emits 'error' on a client whose connection drops while it is checked out of its
 * pool, and an 'error' with no listener kills the process. BullMQ's backend listens on its idle and
 * LISTEN clients, not on every checked-out one (its migration client, say), so a PostgreSQL restart
 * at the wrong moment would crash the server or worker. Every client of BullMQ's pool is this one:
 * the error still reaches the query that was running (it fails, and the caller retries); the event
 * itself is dropped here.
 */
class QueueClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => {});
  }
}
type TaskQueueOf = Queue<JobData, unknown, string, JobData, unknown, string, IQueueBackend, unknown>;

/** The options and backend factory of a BullMQ `Queue` or `Worker` on this connection. */
export function bullmqConnection(connection: QueueConnection): {
  options: { connection: unknown; prefix?: string };
  backend: AnyBackendFactory;
} {
  if (connection.kind === 'redis') {
    return {
      options: { connection: connection.redis, prefix: connection.prefix },
      backend: createRedisBackend as AnyBackendFactory,
    };
  }
  // node-postgres would read sslmode and sslrootcert its own way (require as verify-full): Tasker's reading instead.
  const { url, ssl } = postgresConnection(connection.url);
  return {
    options: {
      connection: {
        connectionString: url,
        ssl,
        schema: postgresNames.bullmqSchema,
        migrate: true,
        max: connection.poolSize,
        application_name: 'tasker-queue',
        Client: QueueClient,
        // The job is delivery, not the record: the task row is committed durably first, and the
        // sweeper enqueues again any PENDING row whose job a crash forgot. So the queue's commits
        // need not wait for the disk, which matters because each of them also NOTIFYs, and
        // PostgreSQL serializes NOTIFYing commits: with a flush each, they queue one by one.
        options: '-c synchronous_commit=off',
      },
    },
    backend: createPostgresBackend as AnyBackendFactory,
  };
}

/** A BullMQ worker of the task queue, on either backend. */
export type TaskWorker = Worker<JobData, unknown, string, IQueueBackend, JobProgress, unknown>;

/** Consumer side of the queue: a BullMQ `Worker` on this connection (the worker process's, and tests'). */
export function createTaskWorker(
  connection: QueueConnection,
  processor: Processor<JobData, unknown, string, JobProgress>,
  options: Omit<WorkerOptions<unknown>, 'connection' | 'prefix'> = {},
): TaskWorker {
  const { options: where, backend } = bullmqConnection(connection);
  return new Worker<JobData, unknown, string, IQueueBackend, JobProgress, unknown>(
    QUEUE_NAME,
    processor,
    { ...options, ...where, settings: { ...options.settings, backoffStrategy } },
    backend,
  );
}

/** Producer side of the queue: server (submission) and worker (recovery). */
export class TaskQueue {
  readonly queue: TaskQueueOf;
  /**
   * On PostgreSQL, single adds (one per submission) are gathered into one `addBulk`: each add is a
   * transaction that NOTIFYs, and PostgreSQL serializes NOTIFYing commits, so one per submission
   * caps submissions near 500/s here. On Redis a plain add is cheaper than a MULTI, so none.
   */
  private readonly adds: Batcher<Traced, void> | undefined;

  constructor(private readonly connection: QueueConnection) {
    const { options, backend } = bullmqConnection(connection);
    this.queue = new Queue<JobData, unknown, string, JobData, unknown, string, IQueueBackend, unknown>(
      QUEUE_NAME,
      options,
      backend,
    );
    if (connection.kind === 'postgres') {
      this.adds = new Batcher(
        async (tasks) => {
          await this.addBulk(tasks);
          return tasks.map(() => undefined);
        },
        (task) => task.id,
        { maxSize: 500 },
      );
    }
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
    const { connection } = this;
    if (connection.kind === 'redis' && connection.redis.status !== 'ready')
      throw new Error(`Redis is not connected (${connection.redis.status})`);
  }

  private get ready(): boolean {
    return this.connection.kind === 'postgres' || this.connection.redis.status === 'ready';
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
      if (this.adds) return this.adds.add(task);
      // One job (a submission): a plain add, no MULTI (which costs more than the add itself).
      await this.queue.add(only.name, jobData(task), jobOptions(only));
      return;
    }
    await this.addBulk(trace ? tasks.map((task) => ({ ...task, trace })) : tasks);
  }

  /**
   * Where each task's job stands: `missing` (no job: never added, or the queue lost it), `failed`
   * (BullMQ gave up on it) or `queued` (waiting, delayed or active). Jobs complete only once their
   * outcome is in PostgreSQL and are then removed, so a completed job under an unfinished row counts
   * as missing.
   */
  async inspect(ids: readonly string[]): Promise<Map<string, 'missing' | 'failed' | 'queued'>> {
    const states = new Map<string, 'missing' | 'failed' | 'queued'>();
    // One round trip with Redis (auto-pipelined); one query per job on PostgreSQL.
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
