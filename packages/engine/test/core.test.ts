import { randomUUID } from 'node:crypto';
import type { TaskRow } from '@tasker/db';
import { createDb, migrateDatabase, PausedTypeStore, TaskStore } from '@tasker/db';
import { createTestEnv, onRedis, waitFor } from '@tasker/testing';
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  checkServerExposure,
  createLockSession,
  createRedis,
  createTaskQueue,
  createTaskWorker,
  describeExposure,
  isLoopbackHost,
  jobOptions,
  type LeaderLock,
  loadEnv,
  PausedTypes,
  PostgresCancelSignals,
  PostgresLeaderLock,
  postgresNames,
  postgresPausedSet,
  type QueueConnection,
  RedisCancelSignals,
  type RedisClient,
  RedisLeaderLock,
  RedisResultCache,
  redisKeys,
  redisPausedSet,
  redisTarget,
  type TaskQueue,
} from '../src/index.ts';

describe('loadEnv', () => {
  it('needs only DATABASE_URL; without REDIS_URL (unset or empty) it is the PostgreSQL-only mode', () => {
    const env = loadEnv({ DATABASE_URL: 'postgres://root@127.0.0.1:5432/tasker' });
    expect(env.PORT).toBe(5000);
    expect(env.REDIS_URL).toBeUndefined();
    expect(loadEnv({ DATABASE_URL: 'postgres://h/db', REDIS_URL: '' }).REDIS_URL).toBeUndefined();
    expect(env.WORKER_CONCURRENCY).toBeGreaterThan(0);
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(() => loadEnv({})).toThrow(/DATABASE_URL: required/);
  });

  it('names every bad variable', () => {
    const attempt = () =>
      loadEnv({
        PORT: 'eighty',
        REDIS_URL: 'localhost:6379',
        WORKER_CONCURRENCY: '0',
        OPENAI_BASE_URL: 'not a url',
      });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const message = (error as Error).message;
      for (const name of ['PORT', 'REDIS_URL', 'WORKER_CONCURRENCY', 'OPENAI_BASE_URL'])
        expect(message).toContain(name);
    }
  });

  it('treats an empty OPENAI_API_KEY as unset and accepts a Redis DB index', () => {
    const env = loadEnv({
      DATABASE_URL: 'postgres://h/db',
      OPENAI_API_KEY: '',
      REDIS_URL: 'redis://127.0.0.1:6379/7',
    });
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379/7');
  });
});

describe('what the server exposes (HOST, AUTH_MODE)', () => {
  const db = { DATABASE_URL: 'postgres://h/db' };

  it('with NODE_ENV unset (auth disabled) listens on loopback by default; in production on every interface', () => {
    expect(loadEnv(db)).toMatchObject({ AUTH_MODE: 'disabled', HOST: '127.0.0.1', RATE_LIMIT_PER_MINUTE: 0 });
    expect(loadEnv({ ...db, NODE_ENV: 'production' })).toMatchObject({
      AUTH_MODE: 'required',
      HOST: '0.0.0.0',
    });
    expect(loadEnv({ ...db, AUTH_MODE: 'required' })).toMatchObject({ HOST: '0.0.0.0' });
    expect(loadEnv({ ...db, HOST: '' }).HOST).toBe('127.0.0.1');
    expect(loadEnv({ ...db, HOST: '::1' }).HOST).toBe('::1');
  });

  it('refuses auth disabled on an address other machines reach, in one line saying what to set', () => {
    for (const HOST of ['0.0.0.0', '::', '192.168.1.10', 'tasker.example.com']) {
      const env = loadEnv({ ...db, HOST });
      expect(() => checkServerExposure(env), HOST).toThrow(ConfigError);
      expect(() => checkServerExposure(env), HOST).toThrow(
        new RegExp(
          `^HOST=${HOST.replaceAll('.', '\\.')} with AUTH_MODE=disabled .*AUTH_MODE=required.*HOST=127\\.0\\.0\\.1`,
        ),
      );
      expect(() => checkServerExposure(loadEnv({ ...db, HOST, AUTH_MODE: 'required' })), HOST).not.toThrow();
    }
    for (const HOST of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(() => checkServerExposure(loadEnv({ ...db, HOST })), HOST).not.toThrow();
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
    expect(isLoopbackHost('::ffff:127.0.0.1')).toBe(true);
  });

  it('says in words which mode runs, on which address', () => {
    expect(describeExposure(loadEnv(db), '127.0.0.1:5000')).toMatch(
      /^auth OFF \(AUTH_MODE=disabled\): anyone who can reach 127\.0\.0\.1:5000 may do anything.*loopback only/,
    );
    expect(describeExposure(loadEnv({ ...db, NODE_ENV: 'production' }), '0.0.0.0:5000')).toMatch(
      /^auth ON \(AUTH_MODE=required\): every API call needs an API key.*0\.0\.0\.0:5000, every interface/,
    );
  });
});

describe('jobOptions', () => {
  it('uses the task id as job id, the row attempts, the definition backoff, and run_after as a delay', () => {
    const now = Date.now();
    const opts = jobOptions(
      { id: 'x', name: 'query_chatgpt', priority: 0, runAfter: new Date(now + 2000), maxAttempts: 3 },
      now,
    );
    expect(opts.jobId).toBe('x');
    expect(opts.attempts).toBe(3);
    expect(opts.delay).toBe(2000);
    // BullMQ's exponential backoff under a name of ours: the workers' backoffStrategy computes it, unless the error asks for a wait (retry-after).
    expect(opts.backoff).toMatchObject({ type: 'tasker-exponential', delay: 2000, jitter: 0.5 });
    expect(opts.removeOnComplete).toBe(true);
    // Every job has a BullMQ priority (1 runs first): default tasks 101, the most urgent 1.
    expect(opts.priority).toBe(101);
    expect(
      jobOptions({ id: 'y', name: 'sum_two_numbers', priority: 100, runAfter: null, maxAttempts: 1 })
        .priority,
    ).toBe(1);
  });
});

/** Each backend this run can reach: PostgreSQL always, Redis unless TEST_MODE=postgres. */
const backends = onRedis ? (['redis', 'postgres'] as const) : (['postgres'] as const);

describe.each(backends)('the queue and its companions on %s', (kind) => {
  const env = createTestEnv();
  const keys = redisKeys(env.prefix);
  // REDIS_URL's Redis, or REDIS_CLUSTER_NODES's cluster (pnpm test:cluster).
  const target = kind === 'redis' ? redisTarget(loadEnv(env.vars)) : undefined;
  const redis = target ? createRedis(target, 'blocking') : undefined;
  let db: ReturnType<typeof createDb>;
  let connection: QueueConnection;
  let queue: TaskQueue;
  beforeAll(async () => {
    await migrateDatabase(env.databaseUrl);
    db = createDb(env.poolUrl, { max: 3, directUrl: env.databaseUrl });
    connection = redis
      ? { kind: 'redis', redis, prefix: env.prefix }
      : { kind: 'postgres', sql: db.sql, listen: db.direct };
    queue = createTaskQueue(connection);
    await queue.waitUntilReady();
  });
  afterAll(async () => {
    await queue?.close();
    await db?.close();
    redis?.disconnect();
    await env.cleanup();
  });

  /**
   * A task to queue. Its row too: in PostgreSQL-only mode a job is its task's handout (BullMQ on
   * Redis needs none).
   */
  async function task() {
    const row = { id: randomUUID(), name: 'sum_two_numbers', priority: 0, runAfter: null, maxAttempts: 1 };
    await new TaskStore(db).insert({ id: row.id, name: row.name, input: { a: 1, b: 2 }, maxAttempts: 1 });
    return row;
  }

  /** Lets the queue fail the next job for good, as it does with a job that stalled too often. */
  async function failNextJob(id: string, reason: string) {
    const worker = createTaskWorker(
      connection,
      async () => {
        throw new UnrecoverableError(reason);
      },
      { concurrency: 1, lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 1 },
    );
    await waitFor(async () => (await queue.inspect([id])).get(id) === 'failed', {
      timeoutMs: 10_000,
      what: `job ${id} failed`,
    });
    await worker.close();
  }

  it('enqueues idempotently and tells missing, queued and failed jobs apart', async () => {
    const queued = await task();
    const absent = randomUUID();
    const failed = await task();
    await queue.enqueue([failed]);
    await failNextJob(failed.id, 'job stalled more than allowable limit');
    await queue.enqueue([queued]);
    await queue.enqueue([queued]); // same job id: ignored
    expect(await queue.state()).toMatchObject({ waiting: 1, delayed: 0, active: 0, failed: 1 });
    const states = await queue.inspect([queued.id, absent, failed.id]);
    expect(states.get(queued.id)).toBe('queued');
    expect(states.get(absent)).toBe('missing');
    expect(states.get(failed.id)).toBe('failed');
    expect(await queue.failedReason(failed.id)).toMatch(/stalled/);
    await queue.remove(queued.id);
    // A job is its task's handout in PostgreSQL-only mode: it goes with the task's end.
    if (!redis) await db.sql`delete from task_handouts`;
  });

  it('replaces a job left from an earlier round (BullMQ would ignore a plain add under its id)', async () => {
    const earlier = await task();
    await queue.enqueue([earlier]);
    await failNextJob(earlier.id, 'an earlier round failed');
    await queue.enqueue([earlier]);
    expect((await queue.inspect([earlier.id])).get(earlier.id)).toBe('failed'); // the add was ignored
    await queue.replace(earlier);
    expect((await queue.inspect([earlier.id])).get(earlier.id)).toBe('queued');
  });

  it('lets one holder of the leader lock run at a time, longer than its ttl, and frees it at the end', async () => {
    // Two processes: each its own lock session (PostgreSQL), or the shared Redis.
    const sessions = redis ? [] : [createLockSession(env.databaseUrl), createLockSession(env.databaseUrl)];
    const lock = (i: number): LeaderLock => {
      const session = sessions[i];
      return session
        ? new PostgresLeaderLock(session, postgresNames.sweeperLock)
        : new RedisLeaderLock(redis as NonNullable<typeof redis>, keys.sweeperLock, 150);
    };
    const [a, b] = [lock(0), lock(1)];
    let overlapped = false;
    let running = false;
    const work = async () => {
      if (running) overlapped = true;
      running = true;
      await new Promise((resolve) => setTimeout(resolve, 500)); // more than 3 ttls
      running = false;
    };
    const first = a.run(work);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const attempts: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      attempts.push(await b.run(work));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await first).toBe(true);
    expect(attempts).toEqual([false, false, false, false]);
    expect(overlapped).toBe(false);
    expect(await b.run(async () => {})).toBe(true); // released at the end, not left to expire
    await Promise.all(sessions.map((session) => session.end()));
  });

  it('shares the paused types between processes, each copy at most maxAgeMs stale unless asked fresh', async () => {
    const set = () => (redis ? redisPausedSet(redis, keys) : postgresPausedSet(new PausedTypeStore(db.db)));
    const [here, there] = [new PausedTypes(set(), 60_000), new PausedTypes(set(), 60_000)];
    expect(await there.has('sum_two_numbers')).toBe(false); // loaded now, kept a minute
    await here.add('sum_two_numbers');
    await here.add('sum_two_numbers'); // twice: still one entry
    expect(await here.list()).toEqual(['sum_two_numbers']);
    expect(await there.has('sum_two_numbers')).toBe(false); // its copy is older
    expect(await there.has('sum_two_numbers', { fresh: true })).toBe(true);
    await here.remove('sum_two_numbers');
    expect(await there.list()).toEqual([]);
  });

  it('delivers a cancel signal to every listener', async () => {
    const signals = redis
      ? new RedisCancelSignals(keys, redis, () => createRedis(target ?? '', 'blocking'))
      : new PostgresCancelSignals(db.sql, db.direct);
    const heard: string[][] = [[], []];
    const stops = await Promise.all(heard.map((list) => signals.listen((id) => list.push(id))));
    const id = randomUUID();
    expect(await signals.send(id)).toBe(true);
    await waitFor(() => heard.every((list) => list.includes(id)), { timeoutMs: 2000, what: 'both heard' });
    for (const stop of stops) await stop();
  });
});

describe.runIf(onRedis)('RedisResultCache', () => {
  // A skipped describe's body still runs (to collect its tests): connect only when its tests do.
  const env = createTestEnv();
  const keys = redisKeys(env.prefix);
  let redis: RedisClient;
  beforeAll(() => {
    redis = createRedis(redisTarget(loadEnv(env.vars)) ?? '', 'blocking');
  });
  afterAll(async () => {
    if (!redis) return;
    redis.disconnect();
    await env.cleanup(); // its keys (no database was made: nothing to drop)
  });

  it('caches only final states', async () => {
    const cache = new RedisResultCache(redis, keys, 60);
    const now = new Date();
    const row: TaskRow = {
      id: randomUUID(),
      tenantId: 'default',
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      status: 'RUNNING',
      output: null,
      error: null,
      attemptErrors: [],
      progress: null,
      version: 1,
      attempts: 1,
      maxAttempts: 1,
      priority: 0,
      timeoutMs: null,
      idempotencyKey: null,
      runAfter: null,
      waitingFor: null,
      ttlMs: null,
      expiresAt: null,
      trace: null,
      scheduleId: null,
      scheduledFor: null,
      tags: [],
      metadata: null,
      concurrencyKey: null,
      singletonKey: null,
      debounceKey: null,
      cancelRequestedAt: null,
      workerId: 'w',
      webhookUrl: null,
      llmCacheTtlMs: null,
      parentId: null,
      usage: null,
      createdAt: now,
      startedAt: now,
      finishedAt: null,
      updatedAt: now,
    };
    await cache.put(row);
    expect(await cache.get(row.id)).toBeUndefined();
    await cache.put({ ...row, status: 'COMPLETED', output: 0, finishedAt: now });
    expect(await cache.get(row.id)).toMatchObject({
      tenantId: 'default',
      event: { status: 'COMPLETED', output: 0 },
    });
    await cache.drop(row.id);
    expect(await cache.get(row.id)).toBeUndefined();
    await redis.set(keys.result(row.id), 'not json');
    expect(await cache.get(row.id)).toBeUndefined();
  });
});
