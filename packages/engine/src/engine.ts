import { createDb, type DbClient, migrateDatabase, TaskStore } from '@tasker/db';
import type { Redis } from 'ioredis';
import { CancelSignals } from './cancel-signals.ts';
import { type Env, taskConfig } from './config.ts';
import { redisKeys } from './keys.ts';
import { TaskLifecycle } from './lifecycle/index.ts';
import type { Logger } from './logger.ts';
import { PausedTypes } from './paused-types.ts';
import { TaskQueue } from './queue.ts';
import { createRedis } from './redis.ts';
import { ResultCache } from './result-cache.ts';

export type EngineRole = 'server' | 'worker';

/** One process's share of Tasker's state: its PostgreSQL pool, its Redis connection and the lifecycle over them. */
export interface Engine {
  lifecycle: TaskLifecycle;
  db: DbClient;
  /** Commands: the queue, cache, paused set, signals. */
  redis: Redis;
  keys: ReturnType<typeof redisKeys>;
  /** Closes the queue, Redis and PostgreSQL (in that order). */
  close(): Promise<void>;
}

/**
 * Migrates the database (creating it if needed), then connects. The server's connections fail
 * fast (a request must answer, with a 503, rather than wait for Redis), and its commits are
 * durable (a 200 means the task is on disk). The worker's Redis connection waits through outages,
 * and its commits do not wait for the disk: a state that a PostgreSQL crash forgets leaves the task
 * unfinished, and the sweeper runs it again.
 */
export async function createEngine(env: Env, log: Logger, role: EngineRole): Promise<Engine> {
  await migrateDatabase(env.DATABASE_URL);
  const db = createDb(env.DATABASE_URL, {
    max: env.DATABASE_POOL_SIZE,
    name: `tasker-${role}`,
    durableCommits: role === 'server',
  });
  const redis = createRedis(env.REDIS_URL, role === 'server' ? 'command' : 'blocking', `tasker-${role}`, {
    autoPipelining: role === 'worker',
  });
  redis.on('error', (error) => log.debug({ err: error }, 'redis connection error'));
  if (role === 'server') {
    // Start even if Redis is down: tasks are still accepted (PostgreSQL) and enqueued later.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  const keys = redisKeys(env.REDIS_PREFIX);
  const queue = new TaskQueue(redis, keys);
  queue.queue.on('error', (error) => log.debug({ err: error }, 'queue error'));
  const lifecycle = new TaskLifecycle({
    store: new TaskStore(db, { idempotencyWindowSeconds: env.IDEMPOTENCY_WINDOW_SECONDS }),
    queue,
    cache: new ResultCache(redis, keys, env.RESULT_CACHE_TTL_SECONDS),
    cancels: new CancelSignals(keys, redis),
    paused: new PausedTypes(redis, keys),
    config: taskConfig(env),
    log,
  });
  return {
    lifecycle,
    db,
    redis,
    keys,
    close: async () => {
      // BullMQ waits for a connection that may never come back (Redis down): bound it.
      await Promise.race([queue.close(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      await redis.quit().catch(() => redis.disconnect());
      await db.close();
    },
  };
}
