/**
 * POST /tasks/batch (tRPC runTasks), issue 20: all or nothing (a bad item at any index: 400 naming
 * every bad index, nothing stored; a good batch: every row in one transaction, ids in order),
 * idempotency and singleton keys answered per item (created, or matched and why), max_queued counted
 * for the batch as a whole (429 QUEUE_FULL, nothing stored), tenants kept apart. No worker: nothing
 * touches the rows after the batch, so their xmin is the batch's transaction.
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient, uuidv7Ms } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let db: DbClient;
let url: string;
let alice: string;
let bob: string;
let carol: string;
let carolAdmin: string;

interface Result {
  id: string;
  created: boolean;
  matched: 'idempotency' | 'singleton' | null;
}
interface Issue {
  path?: string;
  message: string;
}

async function call(method: string, path: string, bearer: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${bearer}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const batch = (bearer: string, tasks: unknown[]) => call('POST', '/tasks/batch', bearer, { tasks });
const results = (body: Record<string, unknown>) => body.tasks as Result[];
const sum = (a: number, extra: object = {}) => ({
  name: 'sum_two_numbers' as const,
  input: { a, b: 1 },
  ...extra,
});

const count = async (tenant?: string) =>
  Number(
    (
      await db.sql<{ n: number }[]>`select count(*)::int as n from tasks
        where ${tenant ?? null}::text is null or owner_id = ${tenant ?? null}`
    )[0]?.n,
  );

beforeAll(async () => {
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', DATABASE_POOL_SIZE: '4' });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'));
  url = server.url;
  db = createDb(env.databaseUrl, { max: 1 });
  const keys = new ApiKeyStore(db.db);
  const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
    (await keys.create({ tenantId, name: 'test', scopes, expiresAt: null })).key;
  alice = await key('alice', ['tasks:write', 'tasks:read']);
  bob = await key('bob', ['tasks:write', 'tasks:read']);
  carol = await key('carol', ['tasks:write', 'tasks:read']);
  carolAdmin = await key('carol', ['admin']);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

describe('POST /tasks/batch', () => {
  it('stores 1,000 tasks in one transaction and answers their ids in order', async () => {
    const items = Array.from({ length: 1000 }, (_, i) =>
      sum(i, i % 3 === 0 ? { tags: [`batch-${i % 7}`], metadata: { i } } : { priority: i % 100 }),
    );
    const res = await batch(alice, items);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(201);
    const answered = results(res.body);
    expect(answered).toHaveLength(1000);
    expect(answered.every((r) => r.created && r.matched === null)).toBe(true);
    const ids = answered.map((r) => r.id);
    expect(new Set(ids).size).toBe(1000);
    // In order: the i-th id is the task of the i-th item.
    const rows = await db.sql<
      { id: string; a: number; tags: string[]; metadata: unknown; priority: number }[]
    >`
      select id, (input->>'a')::int as a, tags, metadata, priority from tasks where id = any(${ids}::uuid[])`;
    const byId = new Map(rows.map((r) => [r.id, r]));
    ids.forEach((id, i) => {
      const row = byId.get(id);
      expect(row?.a, `item ${i}`).toBe(i);
      if (i % 3 === 0) expect(row).toMatchObject({ tags: [`batch-${i % 7}`], metadata: { i } });
      else expect(row).toMatchObject({ tags: [], metadata: null, priority: i % 100 });
    });
    // One transaction: every row has its xmin; each created_at is its id's time (a UUIDv7's).
    const [tx] = await db.sql<{ xmins: number }[]>`
      select count(distinct xmin::text)::int as xmins from tasks where id = any(${ids}::uuid[])`;
    expect(tx).toEqual({ xmins: 1 });
    const times = await db.sql<{ id: string; ms: number }[]>`
      select id, (extract(epoch from created_at) * 1000)::float8 as ms from tasks where id = any(${ids}::uuid[])`;
    expect(times.filter((t) => t.ms !== uuidv7Ms(t.id))).toEqual([]);
    // Shown as a single submission's task is.
    const task = (await call('GET', `/tasks/${ids[4]}`, alice)).body;
    expect(task).toMatchObject({
      id: ids[4],
      status: 'PENDING',
      input: { a: 4, b: 1 },
      tags: [],
      priority: 4,
    });
  });

  it('stores nothing when any item is invalid, and names every bad index', async () => {
    const before = await count();
    const cases: [unknown[], string[]][] = [
      [[sum(0, { input: { a: 'x', b: 1 } }), sum(1)], ['tasks.0.input.a']],
      [[sum(0), sum(1), sum(2, { input: { a: 1 } }), sum(3)], ['tasks.2.input.b']],
      [[sum(0), sum(1), { name: 'nope', input: {} }], ['tasks.2.name']],
      [
        [sum(0, { priority: 101 }), sum(1), sum(2, { tags: ['a,b'] }), sum(3, { input: { a: 1, b: 'y' } })],
        ['tasks.0.priority', 'tasks.2.tags.0', 'tasks.3.input.b'],
      ],
      [[sum(0), sum(1, { debounce: { key: 'k', delay_ms: 10 } })], ['tasks.1.debounce']],
      [[sum(0), sum(1, { delay_ms: 10, run_at: new Date().toISOString() })], ['tasks.1.run_at']],
      [[sum(0, { metadata: { big: 'x'.repeat(5000) } })], ['tasks.0.metadata']],
      [[], ['tasks']],
      [Array.from({ length: 1001 }, (_, i) => sum(i)), ['tasks']],
    ];
    for (const [items, paths] of cases) {
      const res = await batch(alice, items);
      expect(res.status, JSON.stringify(paths)).toBe(400);
      const issues = (res.body.issues as Issue[]).map((i) => i.path);
      expect(issues, JSON.stringify(res.body)).toEqual(expect.arrayContaining(paths));
      // Only the bad items are named.
      const indexes = new Set(issues.map((p) => p?.split('.')[1]).filter((i) => i !== undefined));
      expect([...indexes].sort()).toEqual(
        [...new Set(paths.map((p) => p.split('.')[1]).filter(Boolean))].sort(),
      );
    }
    expect(await count()).toBe(before);
  });

  it('answers each item of its keys as a single submission would: created, or matched and why', async () => {
    const first = await batch(bob, [
      sum(1, { idempotency_key: 'idem-1' }),
      sum(2, { idempotency_key: 'idem-1' }),
      sum(3, { singleton_key: 'single-1' }),
      sum(4, { singleton_key: 'single-1' }),
      sum(5),
    ]);
    expect(first.status).toBe(201);
    const [a, b, c, d, e] = results(first.body);
    expect(a).toMatchObject({ created: true, matched: null });
    expect(b).toEqual({ id: a?.id, created: false, matched: 'idempotency' });
    expect(c).toMatchObject({ created: true, matched: null });
    expect(d).toEqual({ id: c?.id, created: false, matched: 'singleton' });
    expect(e).toMatchObject({ created: true, matched: null });
    expect(await count('bob')).toBe(3);

    // Again: the keys' tasks answer, a new item is created (201 when any item is created).
    const again = await batch(bob, [
      sum(6, { singleton_key: 'single-1' }),
      sum(7),
      sum(8, { idempotency_key: 'idem-1' }),
    ]);
    expect(again.status).toBe(201);
    expect(results(again.body)).toEqual([
      { id: c?.id, created: false, matched: 'singleton' },
      { id: expect.any(String), created: true, matched: null },
      { id: a?.id, created: false, matched: 'idempotency' },
    ]);
    // Nothing created: 200, as a single submission matched by its key.
    const none = await batch(bob, [
      sum(9, { idempotency_key: 'idem-1' }),
      sum(9, { singleton_key: 'single-1' }),
    ]);
    expect(none.status).toBe(200);
    expect(results(none.body).map((r) => r.matched)).toEqual(['idempotency', 'singleton']);
    expect(await count('bob')).toBe(4);

    // A single submission with the same key is answered by the batch's task.
    const single = await call('POST', '/tasks', bob, sum(10, { idempotency_key: 'idem-1' }));
    expect(single.body.id).toBe(a?.id);

    // Keys are per tenant: Alice's idem-1 is a new task of hers.
    const alices = await batch(alice, [sum(1, { idempotency_key: 'idem-1' })]);
    expect(results(alices.body)[0]).toMatchObject({ created: true, matched: null });
    expect(results(alices.body)[0]?.id).not.toBe(a?.id);
  });

  it("counts the batch as a whole against the tenant's max_queued: 429 QUEUE_FULL, nothing stored", async () => {
    const limit = await call('PUT', '/tenants/carol/limits', carolAdmin, { max_queued: 5 });
    expect(limit.status, JSON.stringify(limit.body)).toBe(200);
    const over = await batch(
      carol,
      Array.from({ length: 6 }, (_, i) => sum(i)),
    );
    expect(over.status).toBe(429);
    expect(over.body.code).toBe('QUEUE_FULL');
    expect(await count('carol')).toBe(0);
    const fits = await batch(
      carol,
      Array.from({ length: 4 }, (_, i) => sum(i, { singleton_key: `s${i % 2}` })),
    );
    expect(fits.status).toBe(201);
    expect(await count('carol')).toBe(2);
    const fills = await batch(carol, [sum(1), sum(2), sum(3)]);
    expect(fills.status).toBe(201);
    expect((await batch(carol, [sum(4)])).status).toBe(429);
    // A replay creates nothing: answered whatever the count.
    const replay = await batch(carol, [sum(5, { singleton_key: 's0' })]);
    expect(replay.status).toBe(200);
    expect(await count('carol')).toBe(5);
  });

  it('is runTasks over tRPC, with the same answers and issues', async () => {
    const trpc = createTRPCClient<AppRouter>({
      links: [httpLink({ url: `${url}/trpc`, headers: { authorization: `Bearer ${alice}` } })],
    });
    const answer = await trpc.runTasks.mutate({ tasks: [sum(1, { tags: ['trpc'] }), sum(2)] });
    expect(answer.tasks.map((r) => r.created)).toEqual([true, true]);
    const error = await trpc.runTasks
      .mutate({ tasks: [sum(1), sum(2, { input: { a: 1, b: 'no' } })] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    const data = (error as TRPCClientError<AppRouter>).data as
      | { httpStatus: number; issues?: Issue[] }
      | undefined;
    expect(data?.httpStatus).toBe(400);
    expect(JSON.stringify((error as TRPCClientError<AppRouter>).shape)).toContain('tasks.1.input.b');
  });
});
