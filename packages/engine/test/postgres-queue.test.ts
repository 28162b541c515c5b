import { randomUUID } from 'node:crypto';
import { createDb, migrateDatabase, TaskStore } from '@tasker/db';
import { createTestEnv, waitFor } from '@tasker/testing';
import { DelayedError, UnrecoverableError } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type PostgresQueueConnection,
  PostgresTaskQueue,
  PostgresTaskWorker,
  type QueueJob,
  retryDelay,
  type TaskProcessor,
  type TaskWorkerOptions,
} from '../src/index.ts';

// The PostgreSQL-only mode's queue (the handouts table) on its own: BullMQ's Worker contract, which
// the worker's processor relies on, kept by PostgresTaskWorker. The whole worker and server suites
// run on it too (TEST_MODE=postgres).
const env = createTestEnv();
let db: ReturnType<typeof createDb>;
let store: TaskStore;
let connection: PostgresQueueConnection;
let queue: PostgresTaskQueue;
const workers: PostgresTaskWorker[] = [];

beforeAll(async () => {
  await migrateDatabase(env.databaseUrl);
  db = createDb(env.poolUrl, { max: 4, directUrl: env.databaseUrl });
  store = new TaskStore(db);
  connection = { kind: 'postgres', sql: db.sql, listen: db.direct };
  queue = new PostgresTaskQueue(connection);
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await db.sql`delete from task_handouts`;
  await queue.resume();
});
afterAll(async () => {
  await db?.close();
  await env.cleanup();
});

const OPTIONS: TaskWorkerOptions = {
  concurrency: 5,
  lockDuration: 30_000,
  stalledInterval: 30_000,
  maxStalledCount: 1,
};

function worker(processor: TaskProcessor, options: Partial<TaskWorkerOptions> = {}): PostgresTaskWorker {
  const w = new PostgresTaskWorker(connection, processor, { ...OPTIONS, name: 'test', ...options });
  w.on('error', (error) => {
    throw error;
  });
  workers.push(w);
  return w;
}

/** Tasks queued as the dispatcher does: rows, then their handouts (with their order), then a wake-up. */
async function queued(count: number, { name = 'sum_two_numbers', maxAttempts = 1 } = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    await store.insert({ id, name, input: { a: i, b: 0 }, maxAttempts });
    ids.push(id);
  }
  const taken = await store.dispatch.dispatch(
    ids,
    undefined,
    ids.map((_, i) => i + 1),
  );
  expect(taken.size).toBe(count);
  await queue.handedOut(ids.map((id) => ({ id, name, priority: 0, runAfter: null, maxAttempts })));
  return ids;
}

const handout = async (id: string) =>
  (
    await db.sql<
      { attempts_made: number; locked_by: string | null; failed_reason: string | null; stalls: number }[]
    >`
    select attempts_made, locked_by, failed_reason, stalls from task_handouts where task_id = ${id}`
  )[0];

describe('the PostgreSQL-only queue', () => {
  it('retries a job that throws, after its backoff, counting attempts, and gives up after the last', async () => {
    const seen: { attemptsMade: number; at: number }[] = [];
    const [id = ''] = await queued(1, { maxAttempts: 3 });
    worker(async (job) => {
      seen.push({ attemptsMade: job.attemptsMade, at: Date.now() });
      throw Object.assign(new Error('rate limited'), { retryAfterMs: 100 });
    });
    await waitFor(async () => (await queue.inspect([id])).get(id) === 'failed', { what: 'given up' });
    expect(seen.map((s) => s.attemptsMade)).toEqual([0, 1, 2]);
    expect((seen[1]?.at ?? 0) - (seen[0]?.at ?? 0)).toBeGreaterThanOrEqual(90);
    expect(await queue.failedReason(id)).toBe('rate limited');
    expect(await handout(id)).toMatchObject({ attempts_made: 3, locked_by: null });
  });

  it("waits out a retry as BullMQ's workers do: the type's backoff with jitter, or what the error asked", () => {
    // query_chatgpt: exponential from 2 s, half of it drawn at random.
    for (const [attempt, low, high] of [
      [1, 1000, 2000],
      [2, 2000, 4000],
      [3, 4000, 8000],
    ] as const) {
      const delay = retryDelay('query_chatgpt', attempt, new Error('503'));
      expect(delay).toBeGreaterThanOrEqual(low);
      expect(delay).toBeLessThanOrEqual(high);
    }
    expect(retryDelay('query_chatgpt', 1, Object.assign(new Error('429'), { retryAfterMs: 7000 }))).toBe(
      7000,
    );
    expect(retryDelay('no_such_type', 1, new Error('x'))).toBe(0);
  });

  it('gives a job up at once on an UnrecoverableError', async () => {
    const [id = ''] = await queued(1, { maxAttempts: 5 });
    let calls = 0;
    worker(async () => {
      calls++;
      throw new UnrecoverableError('malformed');
    });
    await waitFor(async () => (await queue.inspect([id])).get(id) === 'failed', { what: 'given up' });
    expect(calls).toBe(1);
    expect(await queue.failedReason(id)).toBe('malformed');
  });

  it('runs a job delayed by its processor again once due, without counting an attempt', async () => {
    const [id = ''] = await queued(1);
    const seen: number[] = [];
    const done = new Set<string>();
    worker(async (job: QueueJob) => {
      seen.push(job.attemptsMade);
      if (seen.length === 1) {
        await job.moveToDelayed(Date.now() + 200);
        throw new DelayedError();
      }
      done.add(String(job.id));
    });
    await waitFor(() => done.has(id), { what: 'run again' });
    expect(seen).toEqual([0, 0]);
    // A resolved job leaves the queue (its handout deleted just after, in a batch).
    await waitFor(async () => (await handout(id)) === undefined, { what: 'the job gone' });
  });

  it('runs at most `concurrency` jobs at once, in queue order, taken a batch at a time', async () => {
    const ids = await queued(40);
    const order: string[] = [];
    let running = 0;
    let most = 0;
    worker(
      async (job) => {
        order.push(String(job.id));
        most = Math.max(most, ++running);
        await new Promise((resolve) => setTimeout(resolve, 20));
        running--;
      },
      { concurrency: 8 },
    );
    await waitFor(() => order.length === 40, { what: 'all run' });
    expect(most).toBe(8);
    expect(order.slice(0, 8).sort()).toEqual(ids.slice(0, 8).sort());
  });

  it('hands out nothing while paused; resuming starts the waiting jobs', async () => {
    await queue.pause();
    expect(await queue.isPaused()).toBe(true);
    const [id = ''] = await queued(1);
    const done = new Set<string>();
    worker(async (job) => {
      done.add(String(job.id));
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(done.size).toBe(0);
    expect(await queue.state()).toMatchObject({ paused: true, waiting: 1, active: 0 });
    await queue.resume();
    await waitFor(() => done.has(id), { what: 'run after resume' });
  });

  it("cancels a running job's signal with the reason given", async () => {
    const [id = ''] = await queued(1);
    let reason: unknown;
    const w = worker(
      (_job, _token, signal) =>
        new Promise<void>((resolve) => {
          signal?.addEventListener('abort', () => {
            reason = signal.reason;
            resolve();
          });
        }),
    );
    await waitFor(async () => (await handout(id))?.locked_by != null, { what: 'taken' });
    expect(w.cancelJob(id, 'cancelled by request')).toBe(true);
    expect(w.cancelJob(randomUUID(), 'x')).toBe(false);
    await waitFor(() => reason !== undefined, { what: 'aborted' });
    expect(reason).toBe('cancelled by request');
  });

  it('takes back a job whose worker died (its lease lapsed), and gives it up after too many stalls', async () => {
    const [id = ''] = await queued(1);
    // A worker that took the job and died: its lease lapsed long ago.
    const lapse = () =>
      db.sql`update task_handouts set locked_by = 'dead', locked_until = now() - interval '1 hour' where task_id = ${id}`;
    await lapse();
    const stalled: string[] = [];
    const runs: string[] = [];
    const w = worker(
      async (job) => {
        runs.push(String(job.id));
        await lapse(); // and this one dies too
      },
      { lockDuration: 100, stalledInterval: 50, maxStalledCount: 1 },
    );
    w.on('stalled', (jobId) => stalled.push(jobId));
    await waitFor(async () => (await queue.inspect([id])).get(id) === 'failed', { what: 'given up' });
    expect(stalled).toEqual([id, id]);
    expect(runs).toEqual([id]);
    expect(await queue.failedReason(id)).toMatch(/stalled/);
    // The sweeper's way for a job given up under a PENDING row: queued afresh.
    await queue.replace({ id, name: 'sum_two_numbers', priority: 0, runAfter: null, maxAttempts: 1 });
    expect(await handout(id)).toMatchObject({ failed_reason: null, stalls: 0, attempts_made: 0 });
  });

  it('takes jobs by polling when it cannot LISTEN (PostgreSQL away at its start), and says so', async () => {
    const errors: string[] = [];
    const done = new Set<string>();
    const deaf = {
      ...connection,
      listen: { listen: async () => Promise.reject(new Error('connection refused')) },
    } as unknown as PostgresQueueConnection;
    const w = new PostgresTaskWorker(deaf, async (job) => void done.add(String(job.id)), {
      ...OPTIONS,
      name: 'deaf',
    });
    w.on('error', (error) => errors.push(error.message));
    workers.push(w);
    await w.waitUntilReady();
    const [id = ''] = await queued(1);
    await waitFor(() => done.has(id), { what: 'taken by polling', timeoutMs: 5000 });
    expect(errors).toContain('connection refused');
  });

  it('renews the leases of running jobs, so that a job longer than its lease is not taken twice', async () => {
    const [id = ''] = await queued(1);
    const runs: string[] = [];
    worker(
      async (job) => {
        runs.push(String(job.id));
        await new Promise((resolve) => setTimeout(resolve, 600));
      },
      { lockDuration: 150, stalledInterval: 50 },
    );
    worker(async (job) => void runs.push(String(job.id)), { lockDuration: 150, stalledInterval: 50 });
    await waitFor(async () => (await handout(id)) === undefined, { what: 'done', timeoutMs: 5000 });
    expect(runs).toEqual([id]);
  });
});
