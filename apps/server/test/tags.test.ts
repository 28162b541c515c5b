/**
 * Tags and metadata on tasks (issue 20): given on both submit doors (POST /tasks, legacy POST
 * /run-task), shown on the record and the list row, found by GET /tasks?tag=… and
 * ?metadata_contains=… (alone, together, with the other filters, per tenant), and the 400s of
 * values out of bounds (nothing stored).
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let db: DbClient;
let url: string;
let alice: string;
let bob: string;

interface Row {
  id: string;
  tags: string[];
  metadata: Record<string, unknown> | null;
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

async function submit(bearer: string, extra: Record<string, unknown>): Promise<string> {
  const res = await call('POST', '/tasks', bearer, {
    name: 'sum_two_numbers',
    input: { a: 1, b: 2 },
    delay_ms: 3_600_000,
    ...extra,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

async function list(bearer: string, query: string): Promise<Row[]> {
  const res = await call('GET', `/tasks?limit=500&${query}`, bearer);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.tasks as Row[];
}
const ids = async (bearer: string, query: string) => (await list(bearer, query)).map((r) => r.id).sort();
const sorted = (values: (string | undefined)[]) => [...values].sort();

const count = async () => Number((await db.sql<{ n: number }[]>`select count(*)::int as n from tasks`)[0]?.n);

/** Alice's tasks, by what they carry. */
const t: Record<string, string> = {};

beforeAll(async () => {
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', DATABASE_POOL_SIZE: '3' });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'));
  url = server.url;
  db = createDb(env.databaseUrl, { max: 1 });
  const keys = new ApiKeyStore(db.db);
  const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
    (await keys.create({ tenantId, name: 'test', scopes, expiresAt: null })).key;
  alice = await key('alice', ['tasks:write', 'tasks:read']);
  bob = await key('bob', ['tasks:write', 'tasks:read']);

  t.red = await submit(alice, { tags: ['red'], metadata: { team: 'a', run: { n: 1 } } });
  t.redBlue = await submit(alice, { tags: ['red', 'blue', 'red'], metadata: { team: 'b' } });
  t.blue = await submit(alice, { tags: ['blue'] });
  t.plain = await submit(alice, {});
  t.meta = await submit(alice, { metadata: { team: 'a', run: { n: 2 } } });
  const legacy = await call('POST', '/run-task', alice, {
    task_name: 'find_longest_consecutive_letters',
    task_parameters: { string: 'aab' },
    delay_ms: 3_600_000,
    tags: ['legacy', 'red'],
    metadata: { team: 'a', door: 'run-task' },
  });
  expect(legacy.status, JSON.stringify(legacy.body)).toBe(200);
  t.legacy = legacy.body.task_uuid as string;
  // Bob's carry the same tags and metadata: never in Alice's answers.
  t.bobRed = await submit(bob, { tags: ['red'], metadata: { team: 'a' } });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

describe('tags and metadata on a task', () => {
  it('come back as given on the record and the list row (duplicate tags dropped, order kept)', async () => {
    const record = (await call('GET', `/tasks/${t.redBlue}`, alice)).body;
    expect(record).toMatchObject({ tags: ['red', 'blue'], metadata: { team: 'b' } });
    const viaLegacy = (await call('GET', `/tasks/${t.legacy}`, alice)).body;
    expect(viaLegacy).toMatchObject({
      tags: ['legacy', 'red'],
      metadata: { team: 'a', door: 'run-task' },
    });
    const plain = (await call('GET', `/tasks/${t.plain}`, alice)).body;
    expect(plain).toMatchObject({ tags: [], metadata: null });
    const rows = await list(alice, '');
    expect(rows.find((r) => r.id === t.red)).toMatchObject({
      tags: ['red'],
      metadata: { team: 'a', run: { n: 1 } },
    });
    expect(rows.find((r) => r.id === t.plain)).toMatchObject({ tags: [], metadata: null });
  });

  it('are found by tag: every tag given must be carried', async () => {
    expect(await ids(alice, 'tag=red')).toEqual(sorted([t.red, t.redBlue, t.legacy]));
    expect(await ids(alice, 'tag=blue')).toEqual(sorted([t.redBlue, t.blue]));
    expect(await ids(alice, 'tag=red&tag=blue')).toEqual([t.redBlue]);
    expect(await ids(alice, 'tag=red,blue')).toEqual([t.redBlue]);
    expect(await ids(alice, 'tag=green')).toEqual([]);
    expect(await ids(bob, 'tag=red')).toEqual([t.bobRed]);
  });

  it('are found by metadata containment, at any depth, and with the other filters', async () => {
    const q = (value: unknown) => `metadata_contains=${encodeURIComponent(JSON.stringify(value))}`;
    expect(await ids(alice, q({ team: 'a' }))).toEqual(sorted([t.red, t.meta, t.legacy]));
    expect(await ids(alice, q({ run: { n: 2 } }))).toEqual([t.meta]);
    expect(await ids(alice, q({ team: 'c' }))).toEqual([]);
    expect(await ids(alice, `${q({ team: 'a' })}&tag=red`)).toEqual(sorted([t.red, t.legacy]));
    expect(await ids(alice, `${q({ team: 'a' })}&name=find_longest_consecutive_letters`)).toEqual([t.legacy]);
    expect(await ids(alice, `${q({ team: 'a' })}&status=COMPLETED`)).toEqual([]);
    expect(await ids(bob, q({ team: 'a' }))).toEqual([t.bobRed]);
  });

  it('answer 400 naming the field, and store nothing, when out of bounds', async () => {
    const before = await count();
    const bad: [Record<string, unknown>, string][] = [
      [{ tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }, 'tags'],
      [{ tags: [''] }, 'tags.0'],
      [{ tags: ['ok', 'x'.repeat(65)] }, 'tags.1'],
      [{ tags: ['a,b'] }, 'tags.0'],
      [{ tags: ['tab\there'] }, 'tags.0'],
      [{ tags: 'red' }, 'tags'],
      [{ metadata: [1, 2] }, 'metadata'],
      [{ metadata: 'x' }, 'metadata'],
      [{ metadata: { big: 'x'.repeat(4096) } }, 'metadata'],
    ];
    for (const [extra, path] of bad) {
      const res = await call('POST', '/tasks', alice, {
        name: 'sum_two_numbers',
        input: { a: 1, b: 2 },
        ...extra,
      });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect((res.body.issues as Issue[]).map((i) => i.path)).toContain(path);
      const legacy = await call('POST', '/run-task', alice, {
        task_name: 'sum_two_numbers',
        task_parameters: { a: 1, b: 2 },
        ...extra,
      });
      expect(legacy.status, JSON.stringify(extra)).toBe(400);
    }
    // Exactly 4 KiB of JSON is taken.
    const fits = { big: 'x'.repeat(4096 - '{"big":""}'.length) };
    await submit(alice, {
      metadata: fits,
      tags: Array.from({ length: 10 }, (_, i) => `${i}${'é'.repeat(63)}`),
    });
    expect(await count()).toBe(before + 1);
  });

  it('answer 400 naming the filter when it cannot be searched for', async () => {
    for (const query of [
      'metadata_contains=[1]',
      'metadata_contains=nope',
      'metadata_contains=%7B%7D',
      `tag=${'x'.repeat(65)}`,
      `tag=${Array.from({ length: 11 }, (_, i) => `t${i}`).join(',')}`,
    ]) {
      const res = await call('GET', `/tasks?${query}`, alice);
      expect(res.status, query).toBe(400);
      const fields = (res.body.issues as Issue[]).map((i) => i.path?.split('.')[0]);
      expect(fields, query).toContain(query.startsWith('tag') ? 'tag' : 'metadata_contains');
    }
  });
});

describe('the filter and run_at, given a time PostgreSQL cannot hold', () => {
  it('answer 400 naming the field, not 500: before the year 1 (UTC), on GET /tasks, the bulk routes and a submission', async () => {
    const before = await count();
    const cases: [string, string, unknown, string][] = [
      ['GET', '/tasks?created_after=0000-01-01T00:00:00Z', undefined, 'created_after'],
      [
        'GET',
        `/tasks?created_before=${encodeURIComponent('0001-01-01T00:30:00+01:00')}`,
        undefined,
        'created_before',
      ],
      [
        'POST',
        '/tasks/cancel',
        { filter: { created_after: '0000-06-01T00:00:00Z' }, dry_run: true },
        'filter.created_after',
      ],
      [
        'POST',
        '/tasks/retry',
        { filter: { created_before: '0000-12-31T23:59:59Z' } },
        'filter.created_before',
      ],
      [
        'POST',
        '/tasks',
        { name: 'sum_two_numbers', input: { a: 1, b: 2 }, run_at: '0000-01-01T00:00:00Z' },
        'run_at',
      ],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await call(method, path, alice, body);
      expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBe(400);
      expect((res.body.issues as Issue[]).map((i) => i.path)).toContain(field);
    }
    // The year 1 itself is taken.
    expect((await call('GET', '/tasks?created_after=0001-01-01T00:00:00Z', alice)).status).toBe(200);
    // A created_before in its first days too (a listing reads back in windows of up to a month).
    expect((await call('GET', '/tasks?created_before=0001-01-10T00:00:00Z', alice)).status).toBe(200);
    expect(await count()).toBe(before);
  });
});
