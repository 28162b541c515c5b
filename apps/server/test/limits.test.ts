/**
 * Limits set at runtime (issue 18): a tenant's and a task type's, through every door (REST, tRPC),
 * with their scopes; bad input (400 naming the field, nothing stored); `max_queued` at submission
 * (429 QUEUE_FULL, nothing stored), exact under racing submissions; a change seen by another server
 * process within 2 s; AUTH_MODE=disabled. No worker runs: submitted tasks stay PENDING.
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

const METRICS_TOKEN = 'limits-metrics-token';

let env: TestEnv;
let server: TaskerServer;
let other: AppProcess;
let db: DbClient;
let store: ApiKeyStore;
const keys = {} as Record<'operator' | 'adminA' | 'adminB' | 'writerA' | 'writerB' | 'readerA', string>;

const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
  (await store.create({ tenantId, name: 'limits test', scopes, expiresAt: null })).key;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  body: any;
}

async function call(
  method: string,
  path: string,
  bearer?: string,
  body?: unknown,
  base?: string,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base ?? server.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** A task that stays PENDING (an hour's delay), of this tenant. */
const submitDelayed = (bearer: string, extra: object = {}, base?: string) =>
  call(
    'POST',
    '/tasks',
    bearer,
    { name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 3_600_000, ...extra },
    base,
  );

const countRows = async (tenant: string, name?: string) => {
  const [row] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where owner_id = ${tenant} and (${name ?? null}::text is null or name = ${name ?? null})`;
  return row?.n ?? 0;
};

beforeAll(async () => {
  env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    TENANT_MAX_RUNNING: '7',
    METRICS_TOKEN,
  });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test-limits'));
  db = createDb(env.databaseUrl, { max: 2 });
  store = new ApiKeyStore(db.db);
  keys.operator = await key('lim-ops', ['operator']);
  keys.adminA = await key('lim-a', ['tasks:write', 'tasks:read', 'admin']);
  keys.adminB = await key('lim-b', ['tasks:write', 'tasks:read', 'admin']);
  keys.writerA = await key('lim-a', ['tasks:write', 'tasks:read']);
  keys.writerB = await key('lim-b', ['tasks:write', 'tasks:read']);
  keys.readerA = await key('lim-a', ['tasks:read']);
  // Another server process over the same database (and Redis): its own copy of the limits.
  other = await spawnApp('server', env.vars);
}, 60_000);

afterAll(async () => {
  await other?.stop();
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

const NONE = { maxRunning: null, maxQueued: null, startsPerMinute: null };
const DEFAULTS = { ...NONE, maxRunning: 7 };

describe("a tenant's limits", () => {
  it('an admin key reads its own: the defaults of the environment, its counts', async () => {
    const res = await call('GET', '/tenants/lim-a/limits', keys.adminA);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({
      tenant: 'lim-a',
      stored: NONE,
      defaults: DEFAULTS,
      effective: DEFAULTS,
      updatedAt: null,
      running: 0,
      queued: 0,
      budgets: {
        llmTokensPerDay: null,
        llmCostPerMonthUsd: null,
        tokensToday: 0,
        costThisMonthUsd: 0,
        exceeded: null,
        heldUntil: null,
      },
    });
  });

  it('an admin key sets its own: a field given changes, one left out stays, null gives it back to the default', async () => {
    let res = await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_running: 3, max_queued: 50 });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.stored).toEqual({ maxRunning: 3, maxQueued: 50, startsPerMinute: null });
    expect(res.body.effective).toEqual({ maxRunning: 3, maxQueued: 50, startsPerMinute: null });
    expect(res.body.updatedAt).toMatch(/^\d{4}-/);
    res = await call('PUT', '/tenants/lim-a/limits', keys.adminA, { starts_per_minute: 600 });
    expect(res.body.effective).toEqual({ maxRunning: 3, maxQueued: 50, startsPerMinute: 600 });
    res = await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_running: null });
    expect(res.body.stored).toEqual({ maxRunning: null, maxQueued: 50, startsPerMinute: 600 });
    expect(res.body.effective).toEqual({ maxRunning: 7, maxQueued: 50, startsPerMinute: 600 });
    // 0 is a limit (nothing queued may be added), not "none".
    res = await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_queued: 0 });
    expect(res.body.effective.maxQueued).toBe(0);
    expect((await call('GET', '/tenants/lim-a/limits', keys.adminA)).body.stored).toEqual({
      maxRunning: null,
      maxQueued: 0,
      startsPerMinute: 600,
    });
    res = await call('DELETE', '/tenants/lim-a/limits', keys.adminA);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ stored: NONE, effective: DEFAULTS, updatedAt: null });
  });

  it("another tenant's limits: an admin key gets 403 and changes nothing; no key 401; a key without admin 403", async () => {
    await call('PUT', '/tenants/lim-b/limits', keys.adminB, { max_queued: 40 });
    for (const [method, body] of [
      ['GET', undefined],
      ['PUT', { max_queued: 1 }],
      ['DELETE', undefined],
    ] as const) {
      const res = await call(method, '/tenants/lim-b/limits', keys.adminA, body);
      expect(res.status, `${method} ${JSON.stringify(res.body)}`).toBe(403);
      expect(res.body.error).toMatch(/own tenant only/);
      expect((await call(method, '/tenants/lim-a/limits', undefined, body)).status).toBe(401);
      expect((await call(method, '/tenants/lim-a/limits', keys.writerA, body)).status).toBe(403);
    }
    expect((await call('GET', '/tenants/lim-b/limits', keys.adminB)).body.stored.maxQueued).toBe(40);
    // The list and the task types are an operator's.
    expect((await call('GET', '/tenants', keys.adminA)).status).toBe(403);
    expect((await call('GET', '/task-types/sum_two_numbers/limits', keys.adminA)).status).toBe(403);
    expect(
      (await call('PUT', '/task-types/sum_two_numbers/limits', keys.adminA, { max_running: 1 })).status,
    ).toBe(403);
    expect((await call('DELETE', '/tenants/lim-b/limits', keys.adminB)).status).toBe(200);
  });

  it('an operator key: any tenant, and the tenants list with their limits and counts, a page at a time', async () => {
    expect((await call('PUT', '/tenants/lim-b/limits', keys.operator, { max_running: 2 })).status).toBe(200);
    expect((await call('GET', '/tenants/lim-b/limits', keys.adminB)).body.effective.maxRunning).toBe(2);
    await submitDelayed(keys.writerB);
    await submitDelayed(keys.writerB);
    // One of them RUNNING, as a worker would have it.
    await db.sql`update tasks set status = 'RUNNING', started_at = now(), attempts = 1
      where id = (select id from tasks where owner_id = 'lim-b' limit 1)`;
    const b = (await call('GET', '/tenants/lim-b/limits', keys.operator)).body;
    expect(b).toMatchObject({ running: 1, queued: 1 });
    const page = await call('GET', '/tenants?limit=2', keys.operator);
    expect(page.status, JSON.stringify(page.body)).toBe(200);
    expect(page.body.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['lim-a', 'lim-b']);
    expect(page.body.tenants[1]).toMatchObject({ tenant: 'lim-b', running: 1, queued: 1 });
    expect(page.body.next_cursor).toBe('lim-b');
    const rest = await call('GET', `/tenants?cursor=${page.body.next_cursor}`, keys.operator);
    expect(rest.body.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['lim-ops']);
    expect(rest.body.next_cursor).toBeNull();
    expect((await call('DELETE', '/tenants/lim-b/limits', keys.operator)).status).toBe(200);
  });

  it('bad input: 400 naming the field, nothing stored', async () => {
    const cases: [object, string][] = [
      [{ max_running: -1 }, 'max_running'],
      [{ max_queued: 1_000_001 }, 'max_queued'],
      [{ starts_per_minute: 1.5 }, 'starts_per_minute'],
      [{ max_queued: '5' }, 'max_queued'],
      [{ max_queued: 5, max_runing: 2 }, ''],
    ];
    for (const [body, field] of cases) {
      const res = await call('PUT', '/tenants/lim-a/limits', keys.operator, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code).toBe('BAD_REQUEST');
      if (field) expect(res.body.issues.map((i: { path: string }) => i.path)).toContain(field);
      else expect(res.body.error).toMatch(/max_runing/);
    }
    // A tenant nothing belongs to: refused (a misspelt name would limit nobody), and nothing stored.
    const unknown = await call('PUT', '/tenants/nobody-here/limits', keys.operator, { max_queued: 5 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.issues[0].path).toBe('tenant');
    const malformed = await call('GET', '/tenants/a%20b/limits', keys.operator);
    expect(malformed.status).toBe(400);
    expect(malformed.body.issues[0].path).toBe('tenant');
    // Reading an unknown tenant is fine: the defaults.
    expect((await call('GET', '/tenants/nobody-here/limits', keys.operator)).body.effective).toEqual(
      DEFAULTS,
    );
    const type = await call('PUT', '/task-types/no_such_type/limits', keys.operator, { max_running: 1 });
    expect(type.status).toBe(400);
    expect(type.body.issues[0].path).toBe('name');
    const [stored] = await db.sql<{ n: number }[]>`
      select (select count(*) from tenant_limits) + (select count(*) from task_type_limits) as n`;
    expect(Number(stored?.n)).toBe(0);
  });
});

describe("a task type's limits", () => {
  it('an operator sets, reads and clears them, max_running_per_key included', async () => {
    let res = await call('GET', '/task-types/find_longest_consecutive_letters/limits', keys.operator);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ name: 'find_longest_consecutive_letters', updatedAt: null });
    res = await call('PUT', '/task-types/find_longest_consecutive_letters/limits', keys.operator, {
      max_running: 20,
      max_running_per_key: 2,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.effective).toEqual({ ...NONE, maxRunning: 20, maxRunningPerKey: 2 });
    res = await call('PUT', '/task-types/find_longest_consecutive_letters/limits', keys.operator, {
      max_running_per_key: -2,
    });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('max_running_per_key');
    res = await call('DELETE', '/task-types/find_longest_consecutive_letters/limits', keys.operator);
    expect(res.body.effective).toEqual({ ...NONE, maxRunningPerKey: null });
  });
});

describe('the same over tRPC', () => {
  const trpc = async (procedure: string, input: unknown, bearer: string, mutation = false) => {
    const res = mutation
      ? await fetch(`${server.url}/trpc/${procedure}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
          body: JSON.stringify(input),
        })
      : await fetch(`${server.url}/trpc/${procedure}?input=${encodeURIComponent(JSON.stringify(input))}`, {
          headers: { authorization: `Bearer ${bearer}` },
        });
    // biome-ignore lint/suspicious/noExplicitAny: tRPC's envelope
    return { status: res.status, body: (await res.json()) as any };
  };

  it('getTenantLimits, setTenantLimits, clearTenantLimits, getTypeLimits, setTypeLimits, clearTypeLimits, listTenants', async () => {
    let res = await trpc('setTenantLimits', { tenant: 'lim-a', max_queued: 9 }, keys.adminA, true);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.result.data.effective.maxQueued).toBe(9);
    res = await trpc('getTenantLimits', { tenant: 'lim-a' }, keys.adminA);
    expect(res.body.result.data.stored.maxQueued).toBe(9);
    res = await trpc('setTenantLimits', { tenant: 'lim-b', max_queued: 9 }, keys.adminA, true);
    expect(res.status).toBe(403);
    expect(res.body.error.data.code).toBe('FORBIDDEN');
    res = await trpc('clearTenantLimits', { tenant: 'lim-a' }, keys.adminA, true);
    expect(res.body.result.data.stored.maxQueued).toBeNull();
    res = await trpc(
      'setTypeLimits',
      { name: 'sum_two_numbers', starts_per_minute: 60 },
      keys.operator,
      true,
    );
    expect(res.body.result.data.effective.startsPerMinute).toBe(60);
    res = await trpc('getTypeLimits', { name: 'sum_two_numbers' }, keys.operator);
    expect(res.body.result.data.stored.startsPerMinute).toBe(60);
    res = await trpc('clearTypeLimits', { name: 'sum_two_numbers' }, keys.operator, true);
    expect(res.body.result.data.stored.startsPerMinute).toBeNull();
    res = await trpc('listTenants', {}, keys.operator);
    expect(res.body.result.data.tenants.length).toBeGreaterThan(0);
    res = await trpc('setTenantLimits', { tenant: 'lim-a', max_running: -1 }, keys.adminA, true);
    expect(res.status).toBe(400);
    expect(res.body.error.data.issues[0].path).toBe('max_running');
  });

  it("data.code is tRPC's own code (PARSE_ERROR), not its status's word", async () => {
    const input = encodeURIComponent(JSON.stringify({ tenant: 'lim-a' }));
    const res = await fetch(`${server.url}/trpc/getTenantLimits?input=${input}&connectionParams=%7B`, {
      headers: { authorization: `Bearer ${keys.adminA}` },
    });
    expect(res.status).toBe(400);
    // biome-ignore lint/suspicious/noExplicitAny: tRPC's envelope
    const body = (await res.json()) as any;
    expect(body.error.data).toMatchObject({ code: 'PARSE_ERROR', httpStatus: 400 });
  });

  it('setTenantLimits for a tenant nothing belongs to: 400 naming tenant, as over REST (not a 500), nothing stored', async () => {
    const res = await trpc(
      'setTenantLimits',
      { tenant: 'nobody-over-trpc', max_queued: 5 },
      keys.operator,
      true,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.error.message).toMatch(/^tenant: no such tenant/);
    expect(res.body.error.data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
    expect(res.body.error.data.issues[0].path).toBe('tenant');
    const [stored] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from tenant_limits where tenant_id = 'nobody-over-trpc'`;
    expect(stored?.n).toBe(0);
  });
});

describe('max_queued at submission', () => {
  it('20 racing submissions with max_queued 5 store exactly 5; the others get 429 QUEUE_FULL and store nothing', async () => {
    await db.sql`delete from tasks where owner_id = 'lim-a'`;
    expect((await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_queued: 5 })).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: 20 }, () => submitDelayed(keys.writerA)));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(15);
    const refused = answers.find((a) => a.status === 429)?.body;
    expect(refused).toMatchObject({ code: 'QUEUE_FULL', status: 429 });
    expect(refused.error).toMatch(/tenant "lim-a".*5 queued.*max_queued/);
    expect(await countRows('lim-a')).toBe(5);
    // Another tenant is not held back by it.
    expect((await submitDelayed(keys.writerB)).status).toBe(201);
    // The old door answers the same.
    const legacy = await call('POST', '/run-task', keys.writerA, {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
    });
    expect(legacy.status).toBe(429);
    expect(legacy.body.code).toBe('QUEUE_FULL');
    // Counted: 15 + 1 refusals.
    const metrics = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    }).then((r) => r.text());
    expect(metrics).toMatch(/^tasker_tasks_refused_total\{reason="QUEUE_FULL"\} 16$/m);
    // A slot frees up: one more fits again.
    await db.sql`update tasks set status = 'RUNNING', started_at = now(), attempts = 1
      where id = (select id from tasks where owner_id = 'lim-a' limit 1)`;
    expect((await submitDelayed(keys.writerA)).status).toBe(201);
    expect((await submitDelayed(keys.writerA)).status).toBe(429);
  });

  it('over tRPC: 429 with data.code QUEUE_FULL (its own code, not the status word), nothing stored', async () => {
    await db.sql`delete from tasks where owner_id = 'lim-a'`;
    await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_queued: 0 });
    const res = await fetch(`${server.url}/trpc/createTask`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.writerA}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sum_two_numbers', input: { a: 1, b: 2 } }),
    });
    expect(res.status).toBe(429);
    // biome-ignore lint/suspicious/noExplicitAny: tRPC's envelope
    const body = (await res.json()) as any;
    expect(body.error.data).toMatchObject({ code: 'QUEUE_FULL', httpStatus: 429 });
    expect(await countRows('lim-a')).toBe(0);
    await call('DELETE', '/tenants/lim-a/limits', keys.adminA);
  });

  it('an idempotent replay is answered with its task even when the queue is full', async () => {
    await db.sql`delete from tasks where owner_id = 'lim-a'`;
    await call('PUT', '/tenants/lim-a/limits', keys.adminA, { max_queued: 1 });
    const first = await submitDelayed(keys.writerA, { idempotency_key: 'once' });
    expect(first.status).toBe(201);
    const again = await submitDelayed(keys.writerA, { idempotency_key: 'once' });
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect((await submitDelayed(keys.writerA, { idempotency_key: 'twice' })).status).toBe(429);
    expect(await countRows('lim-a')).toBe(1);
    await call('DELETE', '/tenants/lim-a/limits', keys.adminA);
  });

  it("a task type's max_queued counts the PENDING tasks of the type of every tenant", async () => {
    const name = 'find_longest_consecutive_letters';
    expect((await call('PUT', `/task-types/${name}/limits`, keys.operator, { max_queued: 3 })).status).toBe(
      200,
    );
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        call('POST', '/tasks', i % 2 ? keys.writerA : keys.writerB, {
          name,
          input: { string: 'aab' },
          delay_ms: 3_600_000,
        }),
      ),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(3);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(7);
    expect(refused[0]?.body.error).toMatch(/task type "find_longest_consecutive_letters"/);
    expect((await countRows('lim-a', name)) + (await countRows('lim-b', name))).toBe(3);
    // Other types are not concerned.
    expect((await submitDelayed(keys.writerA)).status).toBe(201);
    await call('DELETE', `/task-types/${name}/limits`, keys.operator);
  });

  it('a change made on one server is applied by another server process within 2 s', async () => {
    const url = other.url ?? '';
    await db.sql`delete from tasks where owner_id = 'lim-b'`;
    // The other server reads lim-b's limits (none) with a submission.
    expect((await submitDelayed(keys.writerB, {}, url)).status).toBe(201);
    const changed = Date.now();
    expect((await call('PUT', '/tenants/lim-b/limits', keys.adminB, { max_queued: 0 })).status).toBe(200);
    let refusedAfter = Number.POSITIVE_INFINITY;
    while (Date.now() - changed < 5000) {
      const res = await submitDelayed(keys.writerB, {}, url);
      if (res.status === 429) {
        expect(res.body.code).toBe('QUEUE_FULL');
        refusedAfter = Date.now() - changed;
        break;
      }
      expect(res.status).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(refusedAfter).toBeLessThan(2000);
    // And back: cleared on this server, accepted there within 2 s.
    const cleared = Date.now();
    await call('DELETE', '/tenants/lim-b/limits', keys.adminB);
    let acceptedAfter = Number.POSITIVE_INFINITY;
    while (Date.now() - cleared < 5000) {
      if ((await submitDelayed(keys.writerB, {}, url)).status === 201) {
        acceptedAfter = Date.now() - cleared;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(acceptedAfter).toBeLessThan(2000);
  });
});

describe('AUTH_MODE=disabled', () => {
  it('everything is allowed, as the default tenant', async () => {
    const open = createTestEnv({ AUTH_MODE: 'disabled' });
    const parsed = loadEnv(open.vars);
    const local = await startServer(parsed, createLogger(parsed, 'test-limits-open'));
    try {
      const at = (method: string, path: string, body?: unknown) =>
        call(method, path, undefined, body, local.url);
      let res = await at('PUT', '/tenants/default/limits', { max_queued: 1 });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.effective.maxQueued).toBe(1);
      expect((await at('GET', '/tenants/default/limits')).body.stored.maxQueued).toBe(1);
      expect((await at('GET', '/tenants')).status).toBe(200);
      expect((await at('PUT', '/task-types/sum_two_numbers/limits', { max_running: 4 })).status).toBe(200);
      const submit = () =>
        at('POST', '/run-task', {
          task_name: 'sum_two_numbers',
          task_parameters: { a: 1, b: 2 },
          delay_ms: 60_000,
        });
      expect((await submit()).status).toBe(200);
      res = await submit();
      expect(res.status).toBe(429);
      expect(res.body.code).toBe('QUEUE_FULL');
      expect((await at('DELETE', '/tenants/default/limits')).status).toBe(200);
      expect((await submit()).status).toBe(200);
    } finally {
      await local.close();
      await open.cleanup();
    }
  });
});
