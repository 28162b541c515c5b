import { randomUUID } from 'node:crypto';
import type { TaskRow } from '@tasker/db';
import { createTestEnv, deleteKeys } from '@tasker/testing';
import { UnrecoverableError, Worker } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  createRedis,
  jobOptions,
  LeaderLock,
  loadEnv,
  QUEUE_NAME,
  ResultCache,
  redisKeys,
  TaskQueue,
} from '../src/index.ts';

describe('loadEnv', () => {
  it('serves this machine with no variables set', () => {
    const env = loadEnv({});
    expect(env.PORT).toBe(5000);
    expect(env.DATABASE_URL).toBe('postgres://root@127.0.0.1:5432/tasker');
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379/0');
    expect(env.WORKER_CONCURRENCY).toBeGreaterThan(0);
    expect(env.OPENAI_API_KEY).toBeUndefined();
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
    const env = loadEnv({ OPENAI_API_KEY: '', REDIS_URL: 'redis://127.0.0.1:6379/7' });
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379/7');
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
    expect(opts.backoff).toMatchObject({ type: 'exponential', delay: 2000 });
    expect(opts.removeOnComplete).toBe(true);
    // Every job has a BullMQ priority (1 runs first): default tasks 101, the most urgent 1.
    expect(opts.priority).toBe(101);
    expect(
      jobOptions({ id: 'y', name: 'sum_two_numbers', priority: 100, runAfter: null, maxAttempts: 1 })
        .priority,
    ).toBe(1);
  });
});

describe('TaskQueue, ResultCache and LeaderLock on real Redis', () => {
  const env = createTestEnv();
  const keys = redisKeys(env.prefix);
  const redis = createRedis(env.redisUrl, 'blocking');
  const queue = new TaskQueue(redis, keys);
  afterAll(async () => {
    await queue.close();
    await deleteKeys(env.redisUrl, env.prefix);
    redis.disconnect();
  });

  it('enqueues idempotently and tells missing, queued and failed jobs apart', async () => {
    const task = { id: randomUUID(), name: 'sum_two_numbers', priority: 0, runAfter: null, maxAttempts: 1 };
    const absent = randomUUID();
    const failedId = randomUUID();
    await queue.queue.waitUntilReady();
    // A job that BullMQ gives up on.
    await queue.enqueue([{ ...task, id: failedId }]);
    const worker = new Worker(
      QUEUE_NAME,
      async () => {
        throw new UnrecoverableError('job stalled more than allowable limit');
      },
      { connection: redis, prefix: env.prefix },
    );
    await new Promise((resolve) => worker.once('failed', resolve));
    await worker.close();
    await queue.enqueue([task]);
    await queue.enqueue([task]); // same jobId: ignored
    expect(await queue.queue.getJobCounts('wait', 'prioritized')).toEqual({ wait: 0, prioritized: 1 });
    const states = await queue.inspect([task.id, absent, failedId]);
    expect(states.get(task.id)).toBe('queued');
    expect(states.get(absent)).toBe('missing');
    expect(states.get(failedId)).toBe('failed');
    expect(await queue.failedReason(failedId)).toMatch(/stalled/);
  });

  it('replaces a job left from an earlier round (BullMQ would ignore a plain add under its id)', async () => {
    const task = { id: randomUUID(), name: 'sum_two_numbers', priority: 0, runAfter: null, maxAttempts: 1 };
    await queue.enqueue([task]);
    const worker = new Worker(
      QUEUE_NAME,
      async () => {
        throw new UnrecoverableError('an earlier round failed');
      },
      { connection: redis, prefix: env.prefix },
    );
    await new Promise((resolve) => worker.once('failed', resolve));
    await worker.close();
    await queue.enqueue([task]);
    expect((await queue.inspect([task.id])).get(task.id)).toBe('failed'); // the add was ignored
    await queue.replace(task);
    expect((await queue.inspect([task.id])).get(task.id)).toBe('queued');
  });

  it('lets one holder run at a time, renewing the lock while a run lasts longer than its ttl', async () => {
    const a = new LeaderLock(redis, keys.sweeperLock, 150);
    const b = new LeaderLock(redis, keys.sweeperLock, 150);
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
  });

  it('caches only final states', async () => {
    const cache = new ResultCache(redis, keys, 60);
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
      cancelRequestedAt: null,
      workerId: 'w',
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
