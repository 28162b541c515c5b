import {
  type AppProcess,
  onRedis,
  type RedisServer,
  spawnApp,
  startRedisServer,
  waitFor,
} from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

// Short lock and sweep periods so that recovery happens within a test's patience.
const FAST_RECOVERY = { WORKER_LOCK_MS: '2000', SWEEP_INTERVAL_MS: '500', SWEEP_GRACE_MS: '1000' };

let harness: Harness | undefined;
let redisServer: RedisServer | undefined;
const workers: AppProcess[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  await redisServer?.kill();
  redisServer = undefined;
});

function expectEachCompletedOnce(h: Harness, ids: string[]) {
  const completions = h.completedEventsPerTask();
  const missing = ids.filter((id) => completions.get(id) === undefined);
  const twice = ids.filter((id) => (completions.get(id) ?? 0) > 1);
  expect({ missing: missing.length, twice: twice.length }).toEqual({ missing: 0, twice: 0 });
}

describe('nothing accepted is lost', () => {
  it('SIGKILL of the worker with 2,000 tasks queued or running: a new worker completes all, each once', async () => {
    harness = await Harness.start({ ...FAST_RECOVERY, WORKER_CONCURRENCY: '20' });
    const ids = await harness.submitSums(2000);
    const first = await spawnApp('worker', harness.env.vars);
    workers.push(first);
    await harness.waitForStatus('COMPLETED', 50);
    first.child.kill('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    const atKill = await harness.counts();
    expect(atKill.COMPLETED ?? 0).toBeLessThan(2000);

    workers.push(await spawnApp('worker', harness.env.vars));
    await harness.waitForStatus('COMPLETED', 2000);
    expect(await harness.counts()).toEqual({ COMPLETED: 2000 });
    expect(await harness.wrongSums()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the last events arrive
    // PostgreSQL announces each change in the transaction that makes it: a worker killed after its
    // commit cannot take the announcement with it. Every task: exactly one COMPLETED event.
    expectEachCompletedOnce(harness, ids);
    console.log(
      `SIGKILL: ${atKill.COMPLETED} completed at the kill; all 2000 after ${Date.now() - killedAt} ms`,
    );
  });

  it.runIf(onRedis)('Redis restarted empty with 500 tasks PENDING: all 500 COMPLETED', async () => {
    redisServer = await startRedisServer();
    harness = await Harness.start({ ...FAST_RECOVERY, REDIS_URL: redisServer.url });
    await harness.submitSums(500);
    await redisServer.kill();
    await redisServer.start(); // empty: this machine's Redis keeps nothing on disk
    workers.push(await spawnApp('worker', harness.env.vars));
    await harness.waitForStatus('COMPLETED', 500, 30_000);
    expect(await harness.wrongSums()).toBe(0);
  });

  it.runIf(onRedis)(
    'Redis going away under a running worker: tasks accepted meanwhile complete once it is back',
    async () => {
      redisServer = await startRedisServer();
      harness = await Harness.start({ ...FAST_RECOVERY, REDIS_URL: redisServer.url });
      workers.push(await spawnApp('worker', harness.env.vars));
      await harness.submitSums(100);
      await harness.waitForStatus('COMPLETED', 100);
      await redisServer.kill();
      // Submissions while Redis is down are accepted (the row is written; the enqueue fails fast).
      const accepted = await harness.submitSums(100);
      expect(accepted).toHaveLength(100);
      await redisServer.start();
      await harness.waitForStatus('COMPLETED', 200, 30_000);
      expect(await harness.wrongSums()).toBe(0);
    },
  );

  it('a server that died between its INSERT and its enqueue: the sweeper enqueues the rows', async () => {
    harness = await Harness.start(FAST_RECOVERY);
    const ids = await harness.insertSumsWithoutJobs(300);
    workers.push(await spawnApp('worker', harness.env.vars));
    await harness.waitForStatus('COMPLETED', 300, 30_000);
    expect(await harness.wrongSums()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expectEachCompletedOnce(harness, ids);
  });
});

describe('retention', () => {
  it('the worker deletes finished tasks older than RETENTION_DAYS, and keeps the rest', async () => {
    harness = await Harness.start({ RETENTION_DAYS: '1', SWEEP_INTERVAL_MS: '200' });
    workers.push(await spawnApp('worker', harness.env.vars));
    const ids = await harness.submitSums(30);
    await harness.waitForStatus('COMPLETED', 30);
    const old = ids.slice(0, 20);
    await harness.db
      .sql`update tasks set finished_at = now() - interval '2 days' where id = any(${old}::uuid[])`;
    await waitFor(async () => ((await harness?.counts())?.COMPLETED ?? 0) === 10, {
      what: 'old tasks pruned',
    });
    for (const id of ids.slice(20)) expect(await harness.store.get(id)).toBeDefined();
  });
});

describe('many workers', () => {
  it('two worker processes share 2,000 tasks and complete each exactly once, with one result', async () => {
    harness = await Harness.start({ WORKER_CONCURRENCY: '20' });
    workers.push(await spawnApp('worker', harness.env.vars), await spawnApp('worker', harness.env.vars));
    const ids = await harness.submitSums(2000);
    await harness.waitForStatus('COMPLETED', 2000);
    expect(await harness.wrongSums()).toBe(0);
    const byWorker = await harness.db.sql<{ worker_id: string; n: number }[]>`
      select worker_id, count(*)::int as n from tasks group by worker_id`;
    expect(byWorker).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expectEachCompletedOnce(harness, ids);
  });
});
