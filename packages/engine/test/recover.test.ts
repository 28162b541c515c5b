import { createTestEnv } from '@tasker/testing';
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BullmqTaskQueue,
  createEngine,
  createLogger,
  createTaskWorker,
  type Engine,
  loadEnv,
  redisKeys,
} from '../src/index.ts';

const env = createTestEnv({ SWEEP_GRACE_MS: '0' });
let engine: Engine;

beforeAll(async () => {
  const parsed = loadEnv(env.vars);
  engine = await createEngine(parsed, createLogger(parsed, 'test'), 'worker');
});
afterAll(async () => {
  await engine?.close();
  await env.cleanup();
});

/** Lets the queue fail these jobs for good, as it does with a job that stalled too often. */
async function failJobs(ids: string[]) {
  const connection = engine.queueConnection();
  const worker = createTaskWorker(
    connection,
    async () => {
      throw new UnrecoverableError('job stalled more than allowable limit');
    },
    { concurrency: 10, lockDuration: 30_000, stalledInterval: 30_000, maxStalledCount: 1 },
  );
  await worker.waitUntilReady();
  const { queue } = engine.lifecycle.resources;
  const until = Date.now() + 10_000;
  for (;;) {
    const states = await queue.inspect(ids);
    if (ids.every((id) => states.get(id) === 'failed')) break;
    if (Date.now() > until) throw new Error(`jobs not failed: ${JSON.stringify([...states])}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await worker.close();
  if (connection.kind === 'redis') connection.redis.disconnect();
}

describe('recover (the sweeper)', () => {
  // Issue 7, fault 5: one failing call aborted the rest of the batch.
  it('handles each row on its own: an error on one does not stop the recovery of the others', async () => {
    const { lifecycle } = engine;
    const { store, queue } = lifecycle.resources;
    // Submitted and handed to the queue, as the dispatcher does.
    const submit = async () => {
      const { row } = await lifecycle.submit({ name: 'sum_two_numbers', input: { a: 1, b: 2 } });
      await store.dispatch.dispatch([row.id]);
      await queue.handedOut([row]);
      return row;
    };
    const broken = await submit(); // RUNNING, its job failed, and its job's data unreadable
    const stalled = await submit(); // RUNNING, its job failed: BullMQ gave up on it
    await failJobs([broken.id, stalled.id]);
    // PENDING, its job gone (Redis lost it). In PostgreSQL-only mode a job is its task's handout:
    // it cannot go missing while the task is handed out.
    const lost = engine.mode.kind === 'redis' ? await submit() : undefined;
    if (lost && queue instanceof BullmqTaskQueue) await queue.queue.remove(lost.id);
    for (const row of [broken, stalled]) await store.claim(row.id, 'dead-worker', 1);
    const { mode } = engine;
    if (mode.kind === 'redis') {
      const job = redisKeys(env.prefix).bullmq(broken.id);
      await mode.redis.hset(job, 'data', '{not json', 'opts', '{not json');
    } else {
      // A handout's job has no data of its own to break (its task's id is its key): make failing the
      // row itself error instead.
      await engine.db.sql.unsafe(
        `alter table tasks add constraint broken_row check (id <> '${broken.id}' or status <> 'FAILED') not valid`,
      );
    }
    // Oldest first, so that the broken row comes first in the batch.
    await engine.db.sql`update tasks set updated_at = now() - interval '1 minute' where id = ${broken.id}`;

    const report = await lifecycle.recover(0);
    expect(report).toEqual({ checked: lost ? 3 : 2, requeued: lost ? 1 : 0, failed: 1, errors: 1 });
    expect((await store.get(stalled.id))?.status).toBe('FAILED');
    expect((await store.get(stalled.id))?.error?.code).toBe('STALLED');
    if (lost) expect((await queue.inspect([lost.id])).get(lost.id)).toBe('queued');
    expect((await store.get(broken.id))?.status).toBe('RUNNING'); // left for the next sweep
  });
});
