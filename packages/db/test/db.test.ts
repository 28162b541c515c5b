import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbClient, migrateDatabase, TaskStore } from '../src/index.ts';

let env: TestEnv;
let client: DbClient;
let store: TaskStore;

beforeAll(async () => {
  env = createTestEnv();
  // Five processes starting at once against a database that does not exist yet.
  await Promise.all(Array.from({ length: 5 }, () => migrateDatabase(env.databaseUrl)));
  client = createDb(env.databaseUrl, { max: 5 });
  store = new TaskStore(client);
});

afterAll(async () => {
  await client?.close();
  await env?.cleanup();
});

const newTask = async (input: unknown = { a: 1, b: 2 }) =>
  (await store.insert({ id: randomUUID(), name: 'sum_two_numbers', input, maxAttempts: 3 })).row;

describe('migrations', () => {
  it('created the database and applied each migration once despite concurrent starts', async () => {
    const sql = postgres(env.databaseUrl, { max: 1 });
    try {
      const [{ count }] =
        (await sql`select count(*)::int as count from drizzle.__drizzle_migrations`) as unknown as [
          { count: number },
        ];
      const files = (await import('node:fs'))
        .readdirSync(new URL('../drizzle', import.meta.url))
        .filter((f) => f.endsWith('.sql'));
      expect(count).toBe(files.length);
      const indexes = await sql`select indexname from pg_indexes where tablename = 'tasks' order by 1`;
      expect(indexes.map((r) => r.indexname)).toEqual(
        expect.arrayContaining([
          'tasks_owner_created_idx',
          'tasks_unfinished_idx',
          'tasks_owner_idempotency_idx',
        ]),
      );
    } finally {
      await sql.end();
    }
  });

  it('is a no-op when run again', async () => {
    await expect(migrateDatabase(env.databaseUrl)).resolves.toBeUndefined();
  });
});

describe('TaskStore', () => {
  it('starts PENDING and walks RUNNING → COMPLETED, keeping a result of 0 as 0', async () => {
    const task = await newTask();
    expect(task.status).toBe('PENDING');
    expect(task.attempts).toBe(0);
    const running = await store.start(task.id, 'w1');
    expect(running?.status).toBe('RUNNING');
    expect(running?.attempts).toBe(1);
    expect(running?.startedAt).toBeInstanceOf(Date);
    const done = await store.complete(task.id, 0);
    expect(done?.status).toBe('COMPLETED');
    expect(done?.output).toBe(0);
    expect((await store.get(task.id))?.output).toBe(0);
    expect(done?.finishedAt).toBeInstanceOf(Date);
  });

  it('lets exactly one of many racing completions win, and never re-opens a finished task', async () => {
    const task = await newTask();
    await store.start(task.id, 'w1');
    await store.start(task.id, 'w2'); // a re-delivery after a crash may claim it again
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.complete(task.id, i)));
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toHaveLength(1);
    expect((await store.get(task.id))?.output).toBe(winners[0]?.output);
    expect(await store.start(task.id, 'w3')).toBeUndefined();
    expect(
      await store.failAttempt(task.id, { message: 'x', name: 'Error', code: 'HANDLER_ERROR' }, true),
    ).toBeUndefined();
  });

  it('keeps every failed attempt and fails only on the final one', async () => {
    const task = await newTask();
    await store.start(task.id, 'w1');
    const retry = await store.failAttempt(
      task.id,
      { message: 'first', name: 'Error', code: 'HANDLER_ERROR', attempt: 1 },
      false,
    );
    expect(retry?.status).toBe('PENDING');
    expect(retry?.error).toBeNull();
    await store.start(task.id, 'w1');
    const failed = await store.failAttempt(
      task.id,
      { message: 'second', name: 'Error', code: 'TIMEOUT', attempt: 2 },
      true,
    );
    expect(failed?.status).toBe('FAILED');
    expect(failed?.error?.message).toBe('second');
    expect(failed?.attemptErrors.map((e) => e.message)).toEqual(['first', 'second']);
    expect(failed?.attempts).toBe(2);
  });

  it('gives a running attempt back without counting it', async () => {
    const task = await newTask();
    await store.start(task.id, 'w1');
    const released = await store.release(task.id);
    expect(released?.status).toBe('PENDING');
    expect(released?.attempts).toBe(0);
  });

  it('answers an idempotency key with its first task, even to racing inserts, until the window ends', async () => {
    const key = `key-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        store.insert({
          id: randomUUID(),
          name: 'sum_two_numbers',
          input: { a: 1, b: 1 },
          idempotencyKey: key,
        }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
    const later = await store.insert({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: {},
      idempotencyKey: key,
    });
    expect(later).toMatchObject({ created: false, row: { id: results[0]?.row.id } });
    // Past the window the key is free again.
    const shortWindow = new TaskStore(client, { idempotencyWindowSeconds: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fresh = await shortWindow.insert({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: {},
      idempotencyKey: key,
    });
    expect(fresh.created).toBe(true);
  });

  it('prunes finished tasks past retention, in batches, and nothing else', async () => {
    const old = await Promise.all(Array.from({ length: 5 }, () => newTask()));
    for (const task of old) {
      await store.start(task.id, 'w');
      await store.complete(task.id, 1);
    }
    const unfinished = await newTask();
    const recent = await newTask();
    await store.start(recent.id, 'w');
    await store.complete(recent.id, 2);
    await client.sql`update tasks set finished_at = now() - interval '40 days' where id = any(${old.map((t) => t.id)}::uuid[])`;
    await client.sql`update tasks set created_at = now() - interval '40 days' where id = ${unfinished.id}`;
    const cutoff = new Date(Date.now() - 30 * 24 * 3600 * 1000);
    expect(await store.pruneFinished(cutoff, 3)).toBe(3);
    expect(await store.pruneFinished(cutoff, 3)).toBe(2);
    expect(await store.pruneFinished(cutoff, 3)).toBe(0);
    for (const task of old) expect(await store.get(task.id)).toBeUndefined();
    expect(await store.get(unfinished.id)).toBeDefined();
    expect(await store.get(recent.id)).toBeDefined();
  });

  it('pages through stale unfinished rows by (updated_at, id) without skipping or repeating', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add((await newTask()).id);
    const seen: string[] = [];
    let cursor: { updatedAt: Date; id: string } | undefined;
    for (;;) {
      const page = await store.findStale(new Date(Date.now() + 1000), 3, cursor);
      if (page.length === 0) break;
      seen.push(...page.map((r) => r.id));
      const last = page.at(-1);
      if (last) cursor = { updatedAt: last.updatedAt, id: last.id };
    }
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
    expect(await store.findStale(new Date(0), 10)).toEqual([]);
  });
});
