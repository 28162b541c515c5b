import {
  createRedis,
  type Env,
  type Logger,
  PausedTypes,
  StatusBus,
  TaskQueue,
  taskConfig,
} from '@tasker/core';
import { createDb, migrateDatabase, TaskStore } from '@tasker/db';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.ts';
import { TaskFeed } from './live.ts';
import { TaskService } from './service.ts';

export interface TaskerServer {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:5000 */
  url: string;
  close(): Promise<void>;
}

/** Migrates, connects and listens. One PostgreSQL pool and one Redis connection per process. */
export async function startServer(env: Env, log: Logger): Promise<TaskerServer> {
  await migrateDatabase(env.DATABASE_URL);
  const dbClient = createDb(env.DATABASE_URL, { max: env.DATABASE_POOL_SIZE, name: 'tasker-server' });
  const redis = createRedis(env.REDIS_URL, 'command', 'tasker-server');
  redis.on('error', (error) => log.debug({ err: error }, 'redis connection error'));
  await new Promise<void>((resolve) => {
    // Start even if Redis is down: tasks are still accepted (PostgreSQL) and enqueued later.
    const timer = setTimeout(resolve, 5000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const queue = new TaskQueue(redis, env.REDIS_PREFIX);
  queue.queue.on('error', (error) => log.debug({ err: error }, 'queue error'));
  const bus = new StatusBus(redis, env.REDIS_PREFIX, env.RESULT_CACHE_TTL_SECONDS);
  const store = new TaskStore(dbClient, { idempotencyWindowSeconds: env.IDEMPOTENCY_WINDOW_SECONDS });
  const service = new TaskService(
    store,
    queue,
    bus,
    taskConfig(env),
    log,
    new PausedTypes(redis, env.REDIS_PREFIX),
  );
  // One subscriber connection per process, whatever the number of watchers.
  const live = new TaskFeed(
    createRedis(env.REDIS_URL, 'blocking', 'tasker-server-events'),
    bus.channel,
    store,
    { resyncMs: 5000 },
    log,
  );
  live.start();

  const app = await buildApp({
    log,
    bodyLimit: env.BODY_LIMIT_BYTES,
    context: { service, live },
    readiness: { postgres: () => dbClient.sql`select 1`, redis: () => redis.ping() },
  });
  const address = await app.listen({ host: env.HOST, port: env.PORT });
  const url = address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
  log.info({ url }, 'server listening');

  let closing: Promise<void> | undefined;
  return {
    app,
    url,
    close: () => {
      closing ??= (async () => {
        live.close();
        await app.close();
        // BullMQ waits for a connection that may never come back (Redis down): bound it.
        await Promise.race([queue.close(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
        redis.disconnect();
        await dbClient.close();
      })();
      return closing;
    },
  };
}
