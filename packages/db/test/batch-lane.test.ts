/**
 * A store's batch transactions run one at a time, in arrival order (BatchInserts' lane): a batch
 * waits for the one before it, whatever its tenant, and a batch that fails does not hold up the next.
 */
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbClient, migrateDatabase, QueueFullError, TaskStore, uuidv7 } from '../src/index.ts';
import { lockKey } from '../src/tasks/queue-limit.ts';

let env: TestEnv;
let client: DbClient;
let other: DbClient;
let store: TaskStore;

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl);
  client = createDb(env.databaseUrl, { max: 4 });
  other = createDb(env.databaseUrl, { max: 2 });
  store = new TaskStore(client);
});

afterAll(async () => {
  await client?.close();
  await other?.close();
  await env?.cleanup();
});

const rows = (tenantId: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: uuidv7(),
    tenantId,
    name: 'sum_two_numbers',
    input: { a: i, b: 1 },
  }));

const stored = async (tenantId: string) => {
  const [found] = await other.sql<
    { n: number }[]
  >`select count(*)::int as n from tasks where owner_id = ${tenantId}`;
  return found?.n ?? 0;
};

const settled = (promise: Promise<unknown>) => {
  const state = { done: false };
  promise.then(
    () => {
      state.done = true;
    },
    () => {
      state.done = true;
    },
  );
  return state;
};

describe('batch lane', () => {
  it("a batch waits for the one before it (another tenant's, held by a lock), then both are stored, in order", async () => {
    // Another process holds tenant lane-a's max_queued lock: lane-a's batch waits for it in its transaction.
    const reserved = await other.sql.reserve();
    await reserved`select pg_advisory_lock(hashtextextended(${lockKey('tenant', 'lane-a')}, 0))`;
    const finished: string[] = [];
    const first = store.insertBatch(rows('lane-a', 50), { tenant: 1000 }).then((answers) => {
      finished.push('lane-a');
      return answers;
    });
    const second = store.insertBatch(rows('lane-b', 50)).then((answers) => {
      finished.push('lane-b');
      return answers;
    });
    const secondState = settled(second);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(secondState.done).toBe(false);
    expect(await stored('lane-b')).toBe(0);

    await reserved`select pg_advisory_unlock(hashtextextended(${lockKey('tenant', 'lane-a')}, 0))`;
    reserved.release();
    const [a, b] = await Promise.all([first, second]);
    expect(a.every((answer) => answer.created)).toBe(true);
    expect(b.every((answer) => answer.created)).toBe(true);
    expect(finished).toEqual(['lane-a', 'lane-b']);
    expect([await stored('lane-a'), await stored('lane-b')]).toEqual([50, 50]);
  });

  it('a refused batch (QUEUE_FULL) does not hold up the next one', async () => {
    const refused = store.insertBatch(rows('lane-c', 5), { tenant: 2 });
    const next = store.insertBatch(rows('lane-d', 5));
    await expect(refused).rejects.toBeInstanceOf(QueueFullError);
    expect((await next).every((answer) => answer.created)).toBe(true);
    expect([await stored('lane-c'), await stored('lane-d')]).toEqual([0, 5]);
  });
});
