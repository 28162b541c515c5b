import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { deleteClusterKeys } from './redis-cluster.ts';
import { bounded } from './teardown.ts';

/**
 * Which of Tasker's ways to run the tests exercise, from `TEST_MODE`: `redis` (the queue and its
 * companions in Redis; `pnpm test:redis`) or `postgres` (PostgreSQL only: `REDIS_URL` empty; `pnpm
 * test` sets it, on an embedded PostgreSQL).
 */
export const testMode: 'redis' | 'postgres' = process.env.TEST_MODE === 'postgres' ? 'postgres' : 'redis';

/** For tests of what only the Redis mode has (a Redis outage, BullMQ's Redis keys): `it.runIf(onRedis)`. */
export const onRedis = testMode === 'redis';

/**
 * A PgBouncer in transaction mode in front of the tests' PostgreSQL (`TEST_PGBOUNCER_URL`, set by
 * `scripts/with-pgbouncer.mjs`): when set, the processes under test reach their database through it
 * (DATABASE_URL) and PostgreSQL itself for their sessions (DATABASE_DIRECT_URL).
 */
export const pgbouncerUrl: string | undefined = process.env.TEST_PGBOUNCER_URL || undefined;

/**
 * A Redis Cluster's nodes (`TEST_REDIS_CLUSTER_NODES`, `host:port,...`, set by
 * `scripts/with-redis-cluster.mjs`): in the Redis mode, the processes under test then get
 * REDIS_CLUSTER_NODES instead of REDIS_URL (unless a test names its own REDIS_URL).
 */
export const redisClusterNodes: string | undefined =
  testMode === 'redis' ? process.env.TEST_REDIS_CLUSTER_NODES || undefined : undefined;

export interface TestEnv {
  /**
   * Environment variables for a Tasker process under test (pass to loadEnv or a child process).
   * With TEST_PGBOUNCER_URL, DATABASE_URL is the pooler's and DATABASE_DIRECT_URL PostgreSQL's.
   */
  vars: Record<string, string>;
  /** PostgreSQL itself, never the pooler: for the test's own queries (a session of its own, LISTEN, a drop). */
  databaseUrl: string;
  /**
   * Where a pool of the code under test connects (vars.DATABASE_URL): the pooler with
   * TEST_PGBOUNCER_URL, else `databaseUrl`. `createDb(env.poolUrl, { directUrl: env.databaseUrl })`
   * is then set up as the server's and the worker's are.
   */
  poolUrl: string;
  /** The prefix of the keys as the code under test writes them: REDIS_PREFIX, on a cluster `{REDIS_PREFIX}`. */
  prefix: string;
  /** Empty in PostgreSQL-only mode, and on a cluster. */
  redisUrl: string;
  /** REDIS_CLUSTER_NODES; empty unless on a cluster. */
  redisClusterNodes: string;
  /** Drops the database and deletes every Redis key under the prefix. */
  cleanup(): Promise<void>;
}

/**
 * How long a test's clean-up waits for its `DROP DATABASE`. PostgreSQL (before 17) makes every
 * DROP DATABASE wait for an immediate checkpoint, which writes every dirty buffer of the whole
 * server and fsyncs it: on a machine whose disk is slow or busy (CI, other test files writing
 * thousands of tasks), that took tens of seconds. Past this bound the drop goes on in PostgreSQL
 * (the backend completes it) while the test moves on.
 */
export const DROP_DATABASE_BOUND_MS = 15_000;

/** Drops a test database, closing its connections; waits at most DROP_DATABASE_BOUND_MS (see there). */
export async function dropDatabase(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {}, connect_timeout: 5 });
  const drop = sql.unsafe(`drop database if exists "${name.replaceAll('"', '""')}" with (force)`).execute();
  const finished = await bounded(`dropping database ${name}`, DROP_DATABASE_BOUND_MS, () => drop);
  // In time: close now. Late: close once the drop is over (the connection must stay open until then,
  // or PostgreSQL would see the client go and the drop could be cancelled).
  const end = () => sql.end({ timeout: 5 });
  if (finished) await end();
  else void drop.then(end, end);
}

/** Deletes every key that starts with `prefix:` (SCAN, never KEYS). */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // a Redis that is gone (a test stopped it) fails the connect below
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/**
 * A database and a Redis key prefix of the test's own, never those of a developer's running stack:
 * database `tasker_test_<random>` (created by the code under test at start-up), Redis DB index 9
 * unless TEST_REDIS_URL says otherwise, prefix `tasker-test-<random>`. In PostgreSQL-only mode
 * (`TEST_MODE=postgres`) REDIS_URL is empty, which selects that mode in the code under test.
 */
export function createTestEnv(overrides: Record<string, string> = {}): TestEnv {
  const id = randomBytes(5).toString('hex');
  const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
  base.pathname = `/tasker_test_${id}`;
  const databaseUrl = base.toString();
  // Through the pooler: the same database name on its port. A test that names its own DATABASE_URL
  // gets no pooler (unless it names DATABASE_DIRECT_URL too).
  let pooled: Record<string, string> = {};
  if (pgbouncerUrl && overrides.DATABASE_URL === undefined) {
    const viaPooler = new URL(pgbouncerUrl);
    viaPooler.pathname = base.pathname;
    pooled = { DATABASE_URL: viaPooler.toString(), DATABASE_DIRECT_URL: databaseUrl };
  }
  const redisUrl = testMode === 'postgres' ? '' : (process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/9');
  // A test's own cluster, else the run's (unless the test names its own REDIS_URL).
  const onCluster =
    overrides.REDIS_CLUSTER_NODES ??
    (redisClusterNodes && overrides.REDIS_URL === undefined ? redisClusterNodes : '');
  const prefix = `tasker-test-${id}`;
  const vars: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: databaseUrl,
    ...pooled,
    DATABASE_POOL_SIZE: '5',
    REDIS_URL: onCluster ? '' : redisUrl,
    ...(onCluster ? { REDIS_CLUSTER_NODES: onCluster } : {}),
    REDIS_PREFIX: prefix,
    WORKER_CONCURRENCY: '20',
    ...overrides,
  };
  const direct = vars.DATABASE_DIRECT_URL || vars.DATABASE_URL || databaseUrl;
  // On a cluster every key is under the hash tag {REDIS_PREFIX} (@tasker/engine's redisKeyPrefix).
  const keyPrefix = vars.REDIS_CLUSTER_NODES
    ? `{${vars.REDIS_PREFIX ?? prefix}}`
    : (vars.REDIS_PREFIX ?? prefix);
  return {
    vars,
    databaseUrl: direct,
    poolUrl: vars.DATABASE_URL || direct,
    redisUrl: vars.REDIS_URL ?? redisUrl,
    redisClusterNodes: vars.REDIS_CLUSTER_NODES ?? '',
    prefix: keyPrefix,
    cleanup: async () => {
      await dropDatabase(direct);
      const url = vars.REDIS_URL ?? redisUrl;
      const cluster = vars.REDIS_CLUSTER_NODES;
      // A Redis that a test stopped on purpose has nothing left to delete: its error is not news.
      if (cluster)
        await bounded(`deleting Redis Cluster keys ${keyPrefix}:*`, 10_000, () =>
          deleteClusterKeys(cluster, keyPrefix).catch(() => {}),
        );
      else if (url)
        await bounded(`deleting Redis keys ${keyPrefix}:*`, 10_000, () =>
          deleteKeys(url, keyPrefix).catch(() => {}),
        );
    },
  };
}
