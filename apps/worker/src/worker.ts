import { hostname } from 'node:os';
import { ScheduleStore } from '@tasker/db';
import {
  createEngine,
  createTaskWorker,
  Dispatcher,
  type Env,
  type Logger,
  postgresNames,
  type TaskerMetrics,
  taskConfig,
} from '@tasker/engine';
import type { TaskDefinition } from '@tasker/tasks';
import { BulkRunner } from './bulk-runner.ts';
import { CancelWatch } from './cancel-watch.ts';
import { Expirer } from './expirer.ts';
import { CANCELLED, createProcessor, SHUTDOWN } from './processor.ts';
import { Scheduler } from './scheduler.ts';
import { Sweeper } from './sweeper.ts';
import { Waker } from './waker.ts';
import { WebhookSender } from './webhook-sender.ts';

export interface TaskerWorker {
  readonly id: string;
  /** Stops taking jobs, lets active ones finish (or hands them back after SHUTDOWN_TIMEOUT_MS), closes connections. */
  close(): Promise<void>;
}

/** Starts one worker process's share of the work: a BullMQ worker, its cancel paths, and the recovery sweeper. */
export async function startWorker(
  env: Env,
  log: Logger,
  options: {
    metrics?: TaskerMetrics;
    /** The task types this worker runs, by name: the catalog's unless given. */
    tasks?: (name: string) => TaskDefinition | undefined;
  } = {},
): Promise<TaskerWorker> {
  const id = `${hostname()}:${process.pid}`;
  const engine = await createEngine(env, log, 'worker', options);
  const { lifecycle } = engine;
  const running = new Set<string>();
  const stopping = new AbortController();

  const queueConnection = engine.queueConnection();
  const worker = createTaskWorker(
    queueConnection,
    createProcessor({
      lifecycle,
      workerId: id,
      config: taskConfig(env),
      log,
      running,
      stopping: stopping.signal,
      ...(options.tasks ? { tasks: options.tasks } : {}),
    }),
    {
      concurrency: env.WORKER_CONCURRENCY,
      lockDuration: env.WORKER_LOCK_MS,
      stalledInterval: env.WORKER_LOCK_MS,
      // A task whose worker died is re-run this many times before it is failed as STALLED.
      maxStalledCount: 2,
      name: id,
    },
  );
  worker.on('error', (error) => log.error({ err: error }, 'worker error'));
  worker.on('stalled', (jobId) => log.warn({ taskId: jobId }, 'task stalled (its worker died); re-queued'));
  await worker.waitUntilReady();

  // Cancelling a running task: the fast path (a signal) and the sure one (the recorded request).
  const abort = (taskId: string) => {
    if (worker.cancelJob(taskId, CANCELLED)) log.info({ taskId }, 'cancelling running task');
  };
  const unlisten = await lifecycle.resources.cancels.listen(abort);
  const cancelWatch = new CancelWatch(
    lifecycle.resources.store,
    running,
    abort,
    env.WORKER_CANCEL_CHECK_MS,
    log,
  );
  cancelWatch.start();

  const sweeper = new Sweeper(
    lifecycle,
    engine.sweeperLock(Math.max(env.SWEEP_INTERVAL_MS, 5000)),
    {
      intervalMs: env.SWEEP_INTERVAL_MS,
      graceMs: env.SWEEP_GRACE_MS,
      retentionMs: env.RETENTION_DAYS * 24 * 3600 * 1000,
    },
    log,
  );
  sweeper.start();
  const expirer = new Expirer(lifecycle, env.EXPIRE_INTERVAL_MS, log);
  expirer.start();
  // Schedules: every worker fires the due ticks; each tick makes one task, whoever fires it.
  const scheduler = new Scheduler(
    new ScheduleStore(engine.db.db, engine.db.sql),
    lifecycle.resources,
    {
      intervalMs: env.SCHEDULE_INTERVAL_MS,
      graceMs: env.SCHEDULE_GRACE_MS,
      catchUpMax: env.SCHEDULE_CATCH_UP_MAX,
    },
    log,
  );
  scheduler.start();
  // Bulk cancel and retry by filter: each worker runs one operation at a time, a chunk at a time.
  const bulkRunner = new BulkRunner(
    lifecycle,
    id,
    { intervalMs: env.BULK_POLL_MS, chunkSize: env.BULK_CHUNK_SIZE, leaseMs: env.BULK_LEASE_MS },
    log,
  );
  bulkRunner.start();
  // Completion webhooks: the deliveries stored with each finished task, sent at least once.
  const webhookSender = new WebhookSender(engine.db.db, lifecycle, env, log);
  webhookSender.start();
  // Fair dequeue: one worker's dispatcher leads and hands waiting tasks to the queue.
  const dispatcher = new Dispatcher(
    lifecycle.resources,
    {
      bufferSize: env.DISPATCH_BUFFER,
      tickMs: env.DISPATCH_TICK_MS,
      coalesceMs: env.DISPATCH_COALESCE_MS,
      lock: engine.leaderLock(postgresNames.dispatcherLock),
    },
    lifecycle.resources.limits,
  );
  dispatcher.start();
  // Durable steps: a task whose wait is over goes back to PENDING, to be handed out and resume; on
  // the leading dispatcher's worker only.
  const waker = new Waker(lifecycle, env.WAKE_INTERVAL_MS, () => dispatcher.isLeader, log);
  waker.start();
  log.info({ workerId: id, concurrency: env.WORKER_CONCURRENCY }, `worker ready; ${engine.describe}`);

  let closing: Promise<void> | undefined;
  const close = async () => {
    await Promise.all([
      sweeper.stop(),
      expirer.stop(),
      waker.stop(),
      scheduler.stop(),
      dispatcher.stop(),
      webhookSender.stop(),
      bulkRunner.stop(),
    ]);
    const closed = worker.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), env.SHUTDOWN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      log.warn('active tasks did not finish in time; handing them back to the queue');
      stopping.abort();
      worker.cancelAllJobs(SHUTDOWN);
      await closed;
    }
    cancelWatch.stop();
    await unlisten().catch(() => {});
    if (queueConnection.kind === 'redis') {
      const { redis } = queueConnection;
      await redis.quit().catch(() => redis.disconnect());
    }
    await engine.close();
  };
  return {
    id,
    close: () => {
      closing ??= close();
      return closing;
    },
  };
}
