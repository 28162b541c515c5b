import {
  createDb,
  type DbClient,
  isDatabaseUnavailable,
  isPooled,
  LimitStore,
  migrateDatabase,
  PausedTypeStore,
  redactUrl,
  TaskStore,
  WebhookStore,
} from '@tasker/db';
import { type CancelSignals, PostgresCancelSignals, RedisCancelSignals } from './cancel-signals.ts';
import { ConfigError, type Env, taskConfig } from './config.ts';
import { UnreachableError } from './errors/unreachable.ts';
import { postgresNames, redisKeyPrefix, redisKeys } from './keys.ts';
import { createLockSession, type LeaderLock, PostgresLeaderLock, RedisLeaderLock } from './leader-lock.ts';
import { TaskLifecycle } from './lifecycle/index.ts';
import { Limits, tenantLimitDefaults } from './limits.ts';
import type { Logger } from './logger.ts';
import { TaskerMetrics } from './observability/metrics.ts';
import { PausedTypes, postgresPausedSet, redisPausedSet } from './paused-types.ts';
import { createTaskQueue, type QueueConnection } from './queue.ts';
import {
  createRedis,
  describeRedisTarget,
  probeClusterNodes,
  type RedisClient,
  type RedisTarget,
  redisTarget,
} from './redis.ts';
import { noResultCache, RedisResultCache, type ResultCache } from './result-cache.ts';
import { taskWebhookCheck } from './webhooks/task-url.ts';

export type EngineRole = 'server' | 'worker';

/**
 * Where Tasker keeps what is not a task row (docs/architecture.md, "Three ways to run"), chosen once by
 * `REDIS_URL` (or `REDIS_CLUSTER_NODES`): with it, the queue, paused types, result cache, cancel
 * signals, rate limits and the sweeper's lock are in Redis (or a Redis Cluster); without it, all of
 * them are in PostgreSQL, each behind the same small interface (the queue: the handouts table).
 */
export type EngineMode = { kind: 'redis'; redis: RedisClient; target: RedisTarget } | { kind: 'postgres' };

/** One process's share of Tasker's state: its PostgreSQL pool, its queue connection and the lifecycle over them. */
export interface Engine {
  lifecycle: TaskLifecycle;
  /**
   * The effective limits of tenants and task types (`lifecycle.resources.limits`, the same object):
   * `tenant(id)`, `tenants(ids)`, `type(name)`, each at most 1 s old; `invalidate()`; `store` to set them.
   */
  limits: Limits;
  db: DbClient;
  mode: EngineMode;
  /** The mode in one line, for the start-up log: "queue: Redis at …" or "queue: PostgreSQL (REDIS_URL unset)". */
  describe: string;
  /** Where the queue's jobs are, for a task worker (on Redis, the worker opens its own blocking connection). */
  queueConnection(): QueueConnection;
  /** The sweep's lock, one holder across every worker. */
  sweeperLock(ttlMs: number): LeaderLock;
  /**
   * A PostgreSQL advisory lock on this process's lock session (one connection, opened on first use,
   * shared by every such lock of the process): the dispatcher's, in both modes.
   */
  leaderLock(key: number): PostgresLeaderLock;
  /** This process's Prometheus metrics: the lifecycle's transitions and the queue's depth feed them. */
  metrics: TaskerMetrics;
  /** Each resolves when its dependency answers (the server's `/readyz`). */
  readiness: Record<string, () => Promise<unknown>>;
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
export async function createEngine(
  env: Env,
  log: Logger,
  role: EngineRole,
  { metrics = new TaskerMetrics() }: { metrics?: TaskerMetrics } = {},
): Promise<Engine> {
  // Behind a pooler (DATABASE_DIRECT_URL other than DATABASE_URL), what needs a session of its own
  // goes to PostgreSQL itself: the migration (its advisory lock), the LISTEN connections, the lock
  // session.
  const directUrl = env.DATABASE_DIRECT_URL;
  const pooled = isPooled(env.DATABASE_URL, directUrl);
  const db = createDb(env.DATABASE_URL, {
    max: env.DATABASE_POOL_SIZE,
    name: `tasker-${role}`,
    durableCommits: role === 'server',
    directUrl,
  });
  try {
    // An undeclared pooler is refused before the migration, whose session lock it would break.
    if (!pooled) await checkPool(db, env, { before: true });
    await untilReachable(
      `PostgreSQL at ${redactUrl(directUrl)} (${pooled ? 'DATABASE_DIRECT_URL' : 'DATABASE_URL'})`,
      () => migrateDatabase(directUrl),
      isDatabaseUnavailable,
      env.STARTUP_TIMEOUT_MS,
      log,
    );
    await untilReachable(
      `${pooled ? 'the pooler' : 'PostgreSQL'} at ${redactUrl(env.DATABASE_URL)} (DATABASE_URL)`,
      () => checkPool(db, env),
      isDatabaseUnavailable,
      env.STARTUP_TIMEOUT_MS,
      log,
    );
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  const store = new TaskStore(db, { idempotencyWindowSeconds: env.IDEMPOTENCY_WINDOW_SECONDS });
  let lockSession: ReturnType<typeof createLockSession> | undefined;
  const leaderLock = (key: number) => {
    lockSession ??= createLockSession(directUrl);
    return new PostgresLeaderLock(lockSession, key);
  };
  const target = redisTarget(env);
  const parts = target ? await redisParts(target, env, log, role) : postgresParts(db, leaderLock);
  const limits = new Limits(new LimitStore(db.db), tenantLimitDefaults(env));
  const queue = createTaskQueue(parts.queue, (error) => log.debug({ err: error }, 'queue error'));
  const lifecycle = new TaskLifecycle({
    store,
    queue,
    cache: parts.cache,
    cancels: parts.cancels,
    paused: new PausedTypes(parts.paused),
    limits,
    config: taskConfig(env),
    checkWebhookUrl: taskWebhookCheck(new WebhookStore(db.db), env.WEBHOOK_ALLOW_PRIVATE),
    log,
    observe: metrics.observe,
    childBounds: { maxDepth: env.CHILD_TASK_MAX_DEPTH, maxFanOut: env.CHILD_TASK_MAX_FAN_OUT },
  });
  metrics.watchQueue(() => queue.state());
  metrics.watchTenants(() => store.dispatch.perTenant(), env.METRICS_TOP_TENANTS);
  return {
    lifecycle,
    limits,
    db,
    mode: parts.mode,
    describe: pooled
      ? `${parts.describe}; PostgreSQL through the pooler at ${redactUrl(env.DATABASE_URL)} (DATABASE_URL), sessions at ${redactUrl(directUrl)} (DATABASE_DIRECT_URL)`
      : parts.describe,
    queueConnection: parts.workerQueue,
    sweeperLock: parts.sweeperLock,
    leaderLock,
    metrics,
    readiness: { postgres: () => db.sql`select 1`.execute(), ...parts.readiness },
    close: async () => {
      // BullMQ waits for a connection that may never come back (Redis down): bound it.
      await Promise.race([queue.close(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
      if (parts.mode.kind === 'redis') {
        const { redis } = parts.mode;
        // QUIT waits for Redis's answer; a Redis that does not answer gets a plain disconnect.
        const quit = redis.quit().then(
          () => true,
          () => false,
        );
        const quitInTime = await Promise.race([
          quit,
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000).unref()),
        ]);
        if (!quitInTime) redis.disconnect();
      }
      await lockSession?.end({ timeout: 2 }).catch(() => {});
      await db.close();
    },
  };
}

/**
 * A query of the pool (DATABASE_URL) at start: after the migration, it must reach the database that
 * was migrated (DATABASE_DIRECT_URL's, when that is set). A pooler in transaction mode taken for
 * PostgreSQL (DATABASE_DIRECT_URL unset) refuses the pool's startup parameters: a ConfigError that
 * says so, instead of every query failing later. `before`: ahead of the migration, for that refusal
 * only (the database may not exist yet, PostgreSQL may not answer yet: the migration waits for it).
 */
async function checkPool(db: DbClient, env: Env, { before = false } = {}): Promise<void> {
  let database: string | undefined;
  try {
    const [row] = await db.sql<{ database: string }[]>`select current_database() as database`;
    database = row?.database;
  } catch (error) {
    const message = error instanceof Error ? error.message : '';
    const refused = /^unsupported startup parameter: (\S+)/.exec(message);
    if (before && !refused) return;
    if (!refused || db.pooled) throw error;
    throw new ConfigError(
      `PostgreSQL at ${redactUrl(env.DATABASE_URL)} (DATABASE_URL) refused the connection's startup parameter ${refused[1]} ` +
        `("${message}"): a connection pooler in transaction mode (PgBouncer) answers so. Set DATABASE_DIRECT_URL to PostgreSQL itself ` +
        '(not the pooler): the pool then goes through the pooler, unprepared and without startup parameters, and migrations, ' +
        'LISTEN and advisory locks go to DATABASE_DIRECT_URL (docs/architecture.md, "Behind a connection pooler")',
    );
  }
  const expected = decodeURIComponent(new URL(env.DATABASE_DIRECT_URL).pathname.slice(1));
  if (db.pooled && !before && database !== expected) {
    throw new ConfigError(
      `DATABASE_URL (the pooler at ${redactUrl(env.DATABASE_URL)}) reaches database "${database}", DATABASE_DIRECT_URL ` +
        `(${redactUrl(env.DATABASE_DIRECT_URL)}) names "${expected}": both must reach the same database ` +
        '(what the pool writes is announced to the listeners of the direct URL)',
    );
  }
}

interface ModeParts {
  mode: EngineMode;
  describe: string;
  queue: QueueConnection;
  workerQueue: () => QueueConnection;
  cache: ResultCache;
  cancels: CancelSignals;
  paused: ConstructorParameters<typeof PausedTypes>[0];
  sweeperLock: (ttlMs: number) => LeaderLock;
  readiness: Record<string, () => Promise<unknown>>;
}

/**
 * Runs `attempt` until it stops failing with an "unreachable" error: one warning line naming the
 * variable and the address, retries every second, and after `timeoutMs` an UnreachableError with
 * the same line (which `main` prints without a stack trace).
 */
async function untilReachable(
  what: string,
  attempt: () => Promise<unknown>,
  unreachable: (error: unknown) => boolean,
  timeoutMs: number,
  log: Logger,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let tries = 0; ; tries++) {
    try {
      await attempt();
      if (tries > 0) log.info(`reached ${what}`);
      return;
    } catch (error) {
      const reason = error instanceof Error ? error.message || error.name : String(error);
      if (isTlsRefusal(error)) throw new UnreachableError(`cannot connect to ${what} over TLS: ${reason}`);
      if (!unreachable(error)) throw error;
      const line = `cannot reach ${what}: ${reason}`;
      if (Date.now() >= deadline)
        throw new UnreachableError(`${line}; gave up after ${timeoutMs} ms (STARTUP_TIMEOUT_MS)`);
      if (tries === 0) log.warn(`${line}; retrying for up to ${timeoutMs} ms (STARTUP_TIMEOUT_MS)`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

/** Node's codes for a certificate it refused (unknown CA, self-signed, expired, another host's name): waiting changes nothing. */
const TLS_REFUSAL = /CERT|SELF_SIGNED|UNABLE_TO_|SIGNATURE|^ERR_TLS_|^ERR_SSL_/;

function isTlsRefusal(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && typeof cause === 'object' && depth < 6; depth++) {
    const { code } = cause as { code?: unknown };
    if (typeof code === 'string' && TLS_REFUSAL.test(code)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

async function redisParts(target: RedisTarget, env: Env, log: Logger, role: EngineRole): Promise<ModeParts> {
  const ca = env.REDIS_CA_FILE;
  const redis = createRedis(target, role === 'server' ? 'command' : 'blocking', `tasker-${role}`, {
    autoPipelining: role === 'worker',
    ca,
  });
  let lastError: Error | undefined;
  redis.on('error', (error: Error) => {
    lastError = error;
    log.debug({ err: error }, 'redis connection error');
  });
  redis.on('node error', (error: Error) => log.debug({ err: error }, 'redis cluster node error'));
  // Start even if Redis is down: the server still accepts tasks (PostgreSQL) and enqueues them
  // later; the worker's connections wait for it. Say so in one line.
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  if (!ready) {
    const variable = typeof target === 'string' ? 'REDIS_URL' : 'REDIS_CLUSTER_NODES';
    // A cluster's own errors say only that no node answered: a node of it is asked why.
    const reason =
      typeof target === 'string'
        ? lastError?.message
        : ((await probeClusterNodes(target, ca)) ?? lastError?.message);
    log.warn(
      // The reason matters most for TLS (a certificate refused): it does not pass by waiting.
      `cannot reach ${describeRedisTarget(target)} (${variable})${reason ? `: ${reason}` : ''}; starting anyway and reconnecting in the background`,
    );
  }
  const prefix = redisKeyPrefix(env);
  const keys = redisKeys(prefix);
  return {
    mode: { kind: 'redis', redis, target },
    describe: `queue: ${describeRedisTarget(target)} (prefix "${prefix}")`,
    queue: { kind: 'redis', redis, prefix: keys.bullmqPrefix },
    // BullMQ's blocking connection: its own, waiting through outages.
    workerQueue: () => ({
      kind: 'redis',
      redis: createRedis(target, 'blocking', `tasker-${role}-queue`, { ca }),
      prefix: keys.bullmqPrefix,
    }),
    cache: new RedisResultCache(redis, keys, env.RESULT_CACHE_TTL_SECONDS),
    cancels: new RedisCancelSignals(keys, redis, () =>
      createRedis(target, 'blocking', `tasker-${role}-cancel`, { ca }),
    ),
    paused: redisPausedSet(redis, keys),
    sweeperLock: (ttlMs) => new RedisLeaderLock(redis, keys.sweeperLock, ttlMs),
    // A read of a key of Tasker's (not PING, which a cluster answers from any node): on a cluster,
    // the master of Tasker's slot must answer.
    readiness: { redis: () => redis.exists(keys.pausedTypes) },
  };
}

function postgresParts(db: DbClient, leaderLock: (key: number) => LeaderLock): ModeParts {
  // The handouts are the jobs: statements on the pool, wake-ups LISTENed on PostgreSQL itself.
  const queue: QueueConnection = { kind: 'postgres', sql: db.sql, listen: db.direct };
  return {
    mode: { kind: 'postgres' },
    describe: 'queue: PostgreSQL (REDIS_URL unset)',
    queue,
    workerQueue: () => queue,
    cache: noResultCache,
    cancels: new PostgresCancelSignals(db.sql, db.direct),
    paused: postgresPausedSet(new PausedTypeStore(db.db)),
    sweeperLock: () => leaderLock(postgresNames.sweeperLock),
    readiness: {},
  };
}
