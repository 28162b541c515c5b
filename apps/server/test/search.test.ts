/**
 * Search by payload on GET /tasks: input_contains and output_contains (JSONB containment), alone and
 * with every other filter and with cursor paging, per tenant (AUTH_MODE=required, two tenants), and
 * the 400s of a search that cannot be made.
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let worker: AppProcess;
let db: DbClient;
let url: string;
let alice: string;
let bob: string;

interface Row {
  id: string;
  name: string;
  status: string;
  inputPreview: { json: string; truncated: boolean; bytes: number };
  outputPreview: { json: string; truncated: boolean; bytes: number } | null;
  createdAt: string;
}
interface Page {
  tasks: Row[];
  next_cursor: string | null;
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
  return { status: res.status, body: (await res.json()) as unknown };
}

async function submit(bearer: string, name: string, input: unknown, extra: Record<string, unknown> = {}) {
  const res = await call('POST', '/tasks', bearer, { name, input, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return (res.body as Row).id;
}

const q = (params: Record<string, string | number>) =>
  new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();

async function list(bearer: string, params: Record<string, string | number>): Promise<Page> {
  const res = await call('GET', `/tasks?${q(params)}`, bearer);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as Page;
}

/** Every page, following next_cursor; checks that each page is newest first and within the limit. */
async function listAll(bearer: string, params: Record<string, string | number>): Promise<Row[]> {
  const rows: Row[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await list(bearer, cursor ? { ...params, cursor } : params);
    expect(page.tasks.length).toBeLessThanOrEqual(Number(params.limit ?? 50));
    rows.push(...page.tasks);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return rows;
}

const ids = (rows: Row[]) => rows.map((r) => r.id);
const newestFirst = (rows: Row[]) =>
  [...rows].sort((x, y) => y.createdAt.localeCompare(x.createdAt) || y.id.localeCompare(x.id));

/** Alice's tasks, by what they are. */
const mine = {
  /** sum_two_numbers { a: i, b: 7 } for i = 0..11, completed (output i + 7). */
  sums: [] as { id: string; a: number }[],
  /** sum_two_numbers { a: 100 + i, b: 7 }, delayed an hour: PENDING. */
  pending: [] as string[],
  /** The same, cancelled. */
  cancelled: [] as string[],
  /** find_longest_consecutive_letters { string: 'aab' }, completed (output 2). */
  letters: [] as string[],
};
const bobs = { sums: [] as string[], letters: [] as string[] };

beforeAll(async () => {
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', DATABASE_POOL_SIZE: '3' });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'));
  url = server.url;
  worker = await spawnApp('worker', env.vars);
  db = createDb(env.databaseUrl, { max: 1 });
  const keys = new ApiKeyStore(db.db);
  const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
    (await keys.create({ tenantId, name: 'test', scopes, expiresAt: null })).key;
  alice = await key('alice', ['tasks:write', 'tasks:read']);
  bob = await key('bob', ['tasks:write', 'tasks:read']);

  // One at a time, so that created_at orders them as submitted.
  for (let a = 0; a < 12; a++) mine.sums.push({ id: await submit(alice, 'sum_two_numbers', { a, b: 7 }), a });
  for (let i = 0; i < 5; i++)
    mine.pending.push(await submit(alice, 'sum_two_numbers', { a: 100 + i, b: 7 }, { delay_ms: 3_600_000 }));
  for (const id of mine.pending.splice(0, 2)) {
    expect((await call('POST', `/tasks/${id}/cancel`, alice)).status).toBe(200);
    mine.cancelled.push(id);
  }
  for (let i = 0; i < 3; i++)
    mine.letters.push(await submit(alice, 'find_longest_consecutive_letters', { string: 'aab' }));
  // Bob's tasks look like Alice's: the same inputs, the same outputs.
  for (const a of [1, 3]) bobs.sums.push(await submit(bob, 'sum_two_numbers', { a, b: 7 }));
  bobs.letters.push(await submit(bob, 'find_longest_consecutive_letters', { string: 'aab' }));

  const finished = [...mine.sums.map((s) => s.id), ...mine.letters];
  await waitFor(
    async () => {
      const done = await list(alice, { status: 'COMPLETED', limit: 500 });
      return done.tasks.length === finished.length || undefined;
    },
    { timeoutMs: 20_000, what: "Alice's tasks to complete" },
  );
  await waitFor(
    async () => (await list(bob, { status: 'COMPLETED', limit: 500 })).tasks.length === 3 || undefined,
    { timeoutMs: 20_000, what: "Bob's tasks to complete" },
  );
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

describe('GET /tasks?input_contains=…', () => {
  it('finds the one task whose input holds a value, and only it', async () => {
    const page = await list(alice, { input_contains: JSON.stringify({ a: 3 }) });
    expect(ids(page.tasks)).toEqual([mine.sums[3]?.id]);
    expect(page.tasks[0]).toMatchObject({
      inputPreview: { json: '{"a": 3, "b": 7}', truncated: false },
      outputPreview: { json: '10', truncated: false, bytes: 2 },
      status: 'COMPLETED',
    });
    expect(page.next_cursor).toBeNull();
    // Both keys, or a key with another value: containment, not equality of a field.
    expect(ids((await list(alice, { input_contains: '{"a":3,"b":7}' })).tasks)).toEqual([mine.sums[3]?.id]);
    expect((await list(alice, { input_contains: '{"a":3,"b":8}' })).tasks).toEqual([]);
    expect((await list(alice, { input_contains: '{"c":1}' })).tasks).toEqual([]);
    expect(ids((await list(alice, { input_contains: '{"string":"aab"}' })).tasks).sort()).toEqual(
      [...mine.letters].sort(),
    );
  });

  it('pages through many matches with the cursor: every match once, newest first', async () => {
    const all = await listAll(alice, { input_contains: '{"b":7}', limit: 4 });
    const expected = [...mine.sums.map((s) => s.id), ...mine.pending, ...mine.cancelled];
    expect(ids(all).sort()).toEqual([...expected].sort());
    expect(ids(all)).toEqual(ids(newestFirst(all)));
    expect(new Set(ids(all)).size).toBe(all.length);
    // The same rows, the same order, as one big page.
    expect(ids((await list(alice, { input_contains: '{"b":7}', limit: 500 })).tasks)).toEqual(ids(all));
  });

  it('combines with status, name and time filters', async () => {
    const cancelled = await listAll(alice, { input_contains: '{"b":7}', status: 'CANCELLED', limit: 1 });
    expect(ids(cancelled).sort()).toEqual([...mine.cancelled].sort());
    const waiting = await listAll(alice, {
      input_contains: '{"b":7}',
      status: 'PENDING,CANCELLED',
      limit: 2,
    });
    expect(ids(waiting).sort()).toEqual([...mine.pending, ...mine.cancelled].sort());
    expect(
      (await list(alice, { input_contains: '{"b":7}', name: 'find_longest_consecutive_letters' })).tasks,
    ).toEqual([]);
    expect(
      (await listAll(alice, { input_contains: '{"b":7}', name: 'sum_two_numbers', limit: 5 })).length,
    ).toBe(17);

    // created_before the 7th sum: the first six sums only.
    const seventh = (await call('GET', `/tasks/${mine.sums[6]?.id}`, alice)).body as Row;
    const older = await listAll(alice, {
      input_contains: '{"b":7}',
      created_before: seventh.createdAt,
      limit: 4,
    });
    expect(ids(older).sort()).toEqual(
      mine.sums
        .slice(0, 6)
        .map((s) => s.id)
        .sort(),
    );
    const newer = await listAll(alice, {
      input_contains: '{"b":7}',
      created_after: seventh.createdAt,
      status: 'COMPLETED',
      limit: 4,
    });
    expect(ids(newer).sort()).toEqual(
      mine.sums
        .slice(6)
        .map((s) => s.id)
        .sort(),
    );
  });
});

describe('GET /tasks?output_contains=…', () => {
  it('finds tasks by their result, alone and with the input search and other filters', async () => {
    expect(ids((await list(alice, { output_contains: '10' })).tasks)).toEqual([mine.sums[3]?.id]);
    // Output 2: the three letter counts, none of the sums (a + 7 is never 2).
    expect(ids(await listAll(alice, { output_contains: '2', limit: 2 })).sort()).toEqual(
      [...mine.letters].sort(),
    );
    expect(
      ids(
        (
          await list(alice, {
            output_contains: '2',
            input_contains: '{"string":"aab"}',
            name: 'find_longest_consecutive_letters',
            status: 'COMPLETED',
          })
        ).tasks,
      ).sort(),
    ).toEqual([...mine.letters].sort());
    expect((await list(alice, { output_contains: '2', status: 'FAILED' })).tasks).toEqual([]);
    expect((await list(alice, { output_contains: '10', input_contains: '{"a":4}' })).tasks).toEqual([]);
    // A task with no output (PENDING, CANCELLED) never matches, not even null.
    expect((await list(alice, { output_contains: 'null' })).tasks).toEqual([]);
    expect((await list(alice, { output_contains: '"10"' })).tasks).toEqual([]);
  });
});

describe('tenants', () => {
  it("a search never shows another tenant's tasks, even with the same payloads", async () => {
    const bobsView = await listAll(bob, { input_contains: '{"b":7}', limit: 1 });
    expect(ids(bobsView).sort()).toEqual([...bobs.sums].sort());
    expect(ids((await list(bob, { output_contains: '2' })).tasks)).toEqual(bobs.letters);
    expect(ids((await list(bob, { input_contains: '{"a":3}' })).tasks)).toEqual([bobs.sums[1]]);
    const alicesView = await listAll(alice, { input_contains: '{"b":7}', limit: 50 });
    const alices = await listAll(alice, { output_contains: '2' });
    for (const id of [...bobs.sums, ...bobs.letters]) {
      expect(ids(alicesView)).not.toContain(id);
      expect(ids(alices)).not.toContain(id);
    }
    // Alice's cursor does not open Bob's rows either.
    const first = await list(alice, { input_contains: '{"b":7}', limit: 1 });
    const bobWithAlicesCursor = await list(bob, {
      input_contains: '{"b":7}',
      limit: 50,
      cursor: first.next_cursor ?? '',
    });
    for (const row of bobWithAlicesCursor.tasks) expect(bobs.sums).toContain(row.id);
  });
});

describe('searches that cannot be made: 400, naming the parameter', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['not JSON', { input_contains: '{a:1}' }, /input_contains is not valid JSON/],
    ['empty', { output_contains: '' }, /output_contains is not valid JSON/],
    ['truncated', { input_contains: '{"a":' }, /input_contains is not valid JSON/],
    ['only empty containers', { input_contains: '{"a":{}}' }, /input_contains must hold at least one value/],
    ['an empty object', { output_contains: '{}' }, /output_contains must hold at least one value/],
    ['an empty array', { input_contains: '[]' }, /input_contains must hold at least one value/],
    ['NUL', { input_contains: '{"a":"x\\u0000"}' }, /input_contains .*U\+0000/],
    ['a lone surrogate', { output_contains: '"\\ud800"' }, /output_contains .*surrogate/],
    [
      'a number out of range',
      { input_contains: '{"a":1e999}' },
      /input_contains holds a number out of range/,
    ],
    ['too deep', { input_contains: `${'['.repeat(40)}1${']'.repeat(40)}` }, /nested deeper/],
    ['too long', { input_contains: JSON.stringify({ a: 'x'.repeat(5000) }) }, /input_contains/],
  ];
  for (const [what, params, says] of cases) {
    it(what, async () => {
      const res = await call('GET', `/tasks?${q(params)}`, alice);
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(JSON.stringify(res.body)).toMatch(says);
    });
  }

  it('over tRPC as well', async () => {
    const trpc = createTRPCClient<AppRouter>({
      links: [httpBatchLink({ url: `${url}/trpc`, headers: { authorization: `Bearer ${alice}` } })],
    });
    await expect(trpc.listTasks.query({ input_contains: 'nope' })).rejects.toMatchObject({
      data: { httpStatus: 400 },
      message: expect.stringMatching(/input_contains is not valid JSON/),
    });
    const found = await trpc.listTasks.query({ input_contains: '{"a":3}' });
    expect(found.tasks.map((t) => t.id)).toEqual([mine.sums[3]?.id]);
  });
});
