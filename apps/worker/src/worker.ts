import { hostname } from 'node:os';
import {
  createRedis,
  type Env,
  type JobData,
  type Logger,
  PausedTypes,
  QUEUE_NAME,
  StatusBus,
  TaskQueue,
  taskConfig,
} from '@tasker/core';
import { createDb, migrateDatabase, TaskStore } from '@tasker/db';
import { Worker } from 'bullmq';
import { CANCELLED, SHUTDOWN, TaskRunner } from './runner.ts';
import { Sweeper } from './sweeper.ts';

export interface TaskerWorker {
  readonly id: string;
  readonly sweeper: Sweeper;
  /** Stops taking jobs, lets active ones finish (or hands them back after SHUTDOWN_TIMEOUT_MS), closes connections. */
  close(): Promise<void>;
}

/** Starts one worker process's share of the work: a BullMQ worker plus the recovery sweeper. */
export async function startWorker(env: Env, log: Logger): Promise<TaskerWorker> {
  await migrateDatabase(env.DATABASE_URL);
  const id = `${hostname()}:${process.pid}`;
  const dbClient = createDb(env.DATABASE_URL, {
    max: env.DATABASE_POOL_SIZE,
    name: 'tasker-worker',
    durableCommits: false,
  });
  const redis = createRedis(env.REDIS_URL, 'blocking', 'tasker-worker');
  // Its own connection: a MULTI on BullMQ's connection copies BullMQ's ~50 Lua commands every time.
  const busRedis = createRedis(env.REDIS_URL, 'blocking', 'tasker-worker-bus', { autoPipelining: true });
  const store = new TaskStore(dbClient, { idempotencyWindowSeconds: env.IDEMPOTENCY_WINDOW_SECONDS });
  const bus = new StatusBus(busRedis, env.REDIS_PREFIX, env.RESULT_CACHE_TTL_SECONDS);
  const queue = new TaskQueue(redis, env.REDIS_PREFIX);
  const paused = new PausedTypes(busRedis, env.REDIS_PREFIX);
  const runner = new TaskRunner(store, bus, taskConfig(env), id, log, paused);

  const worker = new Worker<JobData>(QUEUE_NAME, runner.process, {
    connection: redis,
    prefix: env.REDIS_PREFIX,
    concurrency: env.WORKER_CONCURRENCY,
    lockDuration: env.WORKER_LOCK_MS,
    stalledInterval: env.WORKER_LOCK_MS,
    // A task whose worker died is re-run this many times before it is failed as STALLED.
    maxStalledCount: 2,
    name: id,
  });
  worker.on('error', (error) => log.error({ err: error }, 'worker error'));
  worker.on('stalled', (jobId) => log.warn({ taskId: jobId }, 'task stalled (its worker died); re-queued'));
  await worker.waitUntilReady();

  // Cancellation requests reach every worker; the one running the task aborts its signal.
  const cancellations = createRedis(env.REDIS_URL, 'blocking', 'tasker-worker-cancel');
  cancellations.on('message', (_channel: string, taskId: string) => {
    if (worker.cancelJob(taskId, CANCELLED)) log.info({ taskId }, 'cancelling running task');
  });
  await cancellations.subscribe(bus.cancelChannel);

  const sweeper = new Sweeper(
    store,
    queue,
    bus,
    busRedis,
    env.REDIS_PREFIX,
    {
      intervalMs: env.SWEEP_INTERVAL_MS,
      graceMs: env.SWEEP_GRACE_MS,
      retentionMs: env.RETENTION_DAYS * 24 * 3600 * 1000,
    },
    log,
    paused,
  );
  sweeper.start();
  log.info({ workerId: id, concurrency: env.WORKER_CONCURRENCY }, 'worker ready');

  let closing: Promise<void> | undefined;
  const close = async () => {
    await sweeper.stop();
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
      worker.cancelAllJobs(SHUTDOWN);
      await closed;
    }
    cancellations.disconnect();
    await queue.close();
    await redis.quit().catch(() => redis.disconnect());
    await busRedis.quit().catch(() => busRedis.disconnect());
    await dbClient.close();
  };
  return {
    id,
    sweeper,
    close: () => {
      closing ??= close();
      return closing;
    },
  };
}
