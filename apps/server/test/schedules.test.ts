/**
 * Schedules (issue 20) over HTTP: the routes through both doors (REST, tRPC) with their scopes and
 * tenants, bad input (400 naming the field, nothing stored), the upsert by key across two servers;
 * and a 1-second schedule over 30 s with two servers and two workers, both workers killed and
 * replaced in the middle: exactly one task per tick, none lost, none doubled, each run to the end.
 * Runs in the queue mode of TEST_MODE (Redis by default, PostgreSQL-only with TEST_MODE=postgres).
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let other: AppProcess;
let db: DbClient;
const workers: AppProcess[] = [];
const keys = {} as Record<'writer' | 'reader' | 'writeOnly' | 'otherTenant', string>;

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  body: any;
}

async function call(
  method: string,
  path: string,
  bearer: string,
  body?: unknown,
  base?: string,
): Promise<Answer> {
  // No key (''): AUTH_MODE=disabled.
  const headers: Record<string, string> = bearer ? { authorization: `Bearer ${bearer}` } : {};
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

const scheduleCount = async () => {
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from schedules`;
  return row?.n ?? -1;
};

const nightly = {
  name: 'sum_two_numbers',
  input: { a: 1, b: 2 },
  cron: '0 2 * * *',
  timezone: 'Europe/Paris',
};

beforeAll(async () => {
  env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    SCHEDULE_INTERVAL_MS: '100',
    WORKER_CONCURRENCY: '4',
    // A task running on a worker the test kills is run again once its job's lock lapses and a
    // stall check finds it: with the default 30 s lock, two stall checks of the new workers could
    // take past the test's wait (seen once in CI, PostgreSQL-only mode).
    WORKER_LOCK_MS: '2000',
  });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test-schedules'));
  other = await spawnApp('server', env.vars);
  db = createDb(env.databaseUrl, { max: 2 });
  const store = new ApiKeyStore(db.db);
  const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
    (await store.create({ tenantId, name: 'schedules test', scopes, expiresAt: null })).key;
  keys.writer = await key('sched-a', ['tasks:write', 'tasks:read']);
  keys.reader = await key('sched-a', ['tasks:read']);
  keys.writeOnly = await key('sched-a', ['tasks:write']);
  keys.otherTenant = await key('sched-b', ['tasks:write', 'tasks:read']);
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await other?.stop();
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

describe('the routes', () => {
  it('create, upsert by key on another server, list by pages, get, pause, delete', async () => {
    const created = await call('POST', '/schedules', keys.writer, { ...nightly, key: 'report' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      key: 'report',
      cron: '0 2 * * *',
      timezone: 'Europe/Paris',
      catchUp: 'latest',
    });
    // The same key, on the other server: that schedule, changed (200), not a second one.
    const again = await call(
      'POST',
      '/schedules',
      keys.writer,
      { ...nightly, key: 'report', cron: '0  3 * * *' },
      other.url,
    );
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    expect(again.body.cron).toBe('0 3 * * *');
    const second = await call('POST', '/schedules', keys.writer, {
      ...nightly,
      cron: '*/5 * * * * *',
      catch_up: 'none',
    });
    expect(second.status).toBe(201);

    const page1 = await call('GET', '/schedules?limit=1', keys.reader);
    expect(page1.status).toBe(200);
    expect(page1.body.schedules.map((s: { id: string }) => s.id)).toEqual([created.body.id]);
    const page2 = await call('GET', `/schedules?limit=1&cursor=${page1.body.next_cursor}`, keys.reader);
    expect(page2.body.schedules.map((s: { id: string }) => s.id)).toEqual([second.body.id]);
    expect(page2.body.next_cursor).toBeNull();
    // The last schedule as a cursor: an empty page; another tenant's: a 400, as an unknown one.
    const after = await call('GET', `/schedules?cursor=${second.body.id}`, keys.reader);
    expect(after.body).toEqual({ schedules: [], next_cursor: null });
    const foreign = await call('GET', `/schedules?cursor=${second.body.id}`, keys.otherTenant);
    expect(foreign.status).toBe(400);
    expect(foreign.body.issues?.[0]?.path).toBe('cursor');

    const got = await call('GET', `/schedules/${created.body.id}`, keys.reader);
    expect(got.status).toBe(200);
    // 03:00 Paris time: 02:00 UTC in winter, 01:00 in summer.
    expect(got.body.nextFires).toHaveLength(5);
    for (const at of got.body.nextFires) expect(at).toMatch(/T0[12]:00:00\.000Z$/);
    expect(got.body.runs).toEqual([]);

    const paused = await call('PATCH', `/schedules/${created.body.id}`, keys.writer, { paused: true });
    expect(paused.status).toBe(200);
    expect(paused.body.paused).toBe(true);

    const deleted = await call('DELETE', `/schedules/${second.body.id}`, keys.writer);
    expect(deleted.status).toBe(200);
    expect((await call('GET', `/schedules/${second.body.id}`, keys.reader)).status).toBe(404);
    expect((await call('DELETE', `/schedules/${second.body.id}`, keys.writer)).status).toBe(404);
  });

  it('bad input: 400 naming the field, nothing stored or changed', async () => {
    const before = await scheduleCount();
    const cases: [object, string][] = [
      [{ ...nightly, cron: '0 2 * *' }, 'cron'],
      [{ ...nightly, cron: '0 2 30 2 *' }, 'cron'], // never fires
      [{ ...nightly, timezone: 'Europe/Atlantis' }, 'timezone'],
      [{ ...nightly, name: 'nope' }, 'name'],
      [{ ...nightly, input: { a: 'one', b: 2 } }, 'input.a'],
      [{ ...nightly, catch_up: 'some' }, 'catch_up'],
      [{ ...nightly, priority: 101 }, 'priority'],
      [{ ...nightly, key: '' }, 'key'],
      [{ ...nightly, extra: 1 }, ''],
    ];
    for (const [body, field] of cases) {
      const res = await call('POST', '/schedules', keys.writer, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.issues?.map((i: { path: string }) => i.path) ?? [], JSON.stringify(res.body)).toContain(
        field,
      );
    }
    expect(await scheduleCount()).toBe(before);

    const made = await call('POST', '/schedules', keys.writer, nightly);
    for (const [body, field] of [
      [{ cron: '61 * * * *' }, 'cron'],
      [{ timezone: '+02:00' }, 'timezone'],
      [{ input: { a: 1 } }, 'input.b'],
    ] as const) {
      const res = await call('PATCH', `/schedules/${made.body.id}`, keys.writer, body);
      expect(res.status).toBe(400);
      expect(res.body.issues.map((i: { path: string }) => i.path)).toContain(field);
    }
    const after = await call('GET', `/schedules/${made.body.id}`, keys.reader);
    expect(after.body).toMatchObject({
      cron: nightly.cron,
      timezone: nightly.timezone,
      input: nightly.input,
    });
  });

  it('scopes (tasks:write to change, tasks:read to read) and tenants (another one is a 404)', async () => {
    const made = await call('POST', '/schedules', keys.writer, nightly);
    expect((await call('POST', '/schedules', keys.reader, nightly)).status).toBe(403);
    expect((await call('PATCH', `/schedules/${made.body.id}`, keys.reader, { paused: true })).status).toBe(
      403,
    );
    expect((await call('DELETE', `/schedules/${made.body.id}`, keys.reader)).status).toBe(403);
    expect((await call('GET', '/schedules', keys.writeOnly)).status).toBe(403);
    expect((await call('GET', `/schedules/${made.body.id}`, keys.writeOnly)).status).toBe(403);
    for (const [method, body] of [
      ['GET', undefined],
      ['PATCH', { paused: true }],
      ['DELETE', undefined],
    ] as const)
      expect((await call(method, `/schedules/${made.body.id}`, keys.otherTenant, body)).status).toBe(404);
    const theirs = await call('GET', '/schedules', keys.otherTenant);
    expect(theirs.body.schedules).toEqual([]);
    // A key is per tenant too: tenant B's "report" is its own schedule.
    const b = await call('POST', '/schedules', keys.otherTenant, { ...nightly, key: 'report' });
    expect(b.status).toBe(201);
  });

  it('the tRPC door: createSchedule, getSchedule, updateSchedule, camelCase answers', async () => {
    const trpc = async (procedure: string, input: unknown, mutation = false) => {
      const res = mutation
        ? await fetch(`${server.url}/trpc/${procedure}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${keys.writer}`, 'content-type': 'application/json' },
            body: JSON.stringify(input),
          })
        : await fetch(`${server.url}/trpc/${procedure}?input=${encodeURIComponent(JSON.stringify(input))}`, {
            headers: { authorization: `Bearer ${keys.writer}` },
          });
      // biome-ignore lint/suspicious/noExplicitAny: a tRPC answer, checked field by field
      return { status: res.status, body: (await res.json()) as any };
    };
    const made = await trpc('createSchedule', { ...nightly, key: 'trpc' }, true);
    expect(made.status).toBe(200);
    const id = made.body.result.data.id;
    const got = await trpc('getSchedule', { id });
    expect(got.body.result.data).toMatchObject({
      id,
      key: 'trpc',
      catchUp: 'latest',
      nextFires: expect.any(Array),
    });
    const bad = await trpc('updateSchedule', { id, cron: 'nope' }, true);
    expect(bad.status).toBe(400);
    expect(bad.body.error.data.issues[0].path).toBe('cron');
  });
});

describe('AUTH_MODE=disabled', () => {
  it('every route, without a key, as the default tenant', async () => {
    const open = createTestEnv({ AUTH_MODE: 'disabled' });
    const parsed = loadEnv(open.vars);
    const local = await startServer(parsed, createLogger(parsed, 'test-schedules-open'));
    try {
      const at = (method: string, path: string, body?: unknown) => call(method, path, '', body, local.url);
      let res = await at('POST', '/schedules', { ...nightly, key: 'open' });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      const { id } = res.body;
      expect((await at('POST', '/schedules', { ...nightly, key: 'open', cron: '0 3 * * *' })).status).toBe(
        200,
      );
      res = await at('GET', '/schedules');
      expect(res.body.schedules.map((s: { id: string }) => s.id)).toEqual([id]);
      res = await at('GET', `/schedules/${id}`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ cron: '0 3 * * *', runs: [] });
      expect(res.body.nextFires).toHaveLength(5);
      res = await at('PATCH', `/schedules/${id}`, { paused: true });
      expect(res.body.paused).toBe(true);
      expect((await at('DELETE', `/schedules/${id}`)).status).toBe(200);
      expect((await at('GET', `/schedules/${id}`)).status).toBe(404);
    } finally {
      await local.close();
      await open.cleanup();
    }
  });
});

describe('exactly once per tick, two servers and two workers', () => {
  it('a 1-second schedule over 30 s: one task per tick; both workers killed and replaced midway lose none and double none', async () => {
    workers.push(await spawnApp('worker', env.vars), await spawnApp('worker', env.vars));
    const made = await call(
      'POST',
      '/schedules',
      keys.writer,
      { name: 'sum_two_numbers', input: { a: 20, b: 22 }, cron: '* * * * * *', key: 'every-second' },
      other.url,
    );
    expect(made.status).toBe(201);
    const start = Date.now();
    const id = made.body.id as string;
    const ticks = async () =>
      db.sql<{ at: number; n: number }[]>`
        select (extract(epoch from scheduled_for) * 1000)::float8 as at, count(*)::int as n
        from tasks where schedule_id = ${id} group by scheduled_for order by scheduled_for`;

    await new Promise((resolve) => setTimeout(resolve, 12_000));
    // Everything that fires goes away at once, then two new workers start.
    const down = Date.now();
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    workers.push(await spawnApp('worker', env.vars), await spawnApp('worker', env.vars));
    const up = Date.now();
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, start + 30_000 - Date.now())));
    const paused = await call('PATCH', `/schedules/${id}`, keys.writer, { paused: true });
    expect(paused.status).toBe(200);
    const end = Date.now();
    // A pass under way when the pause committed may still fire its tick: wait for that one.
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    const rows = await ticks();
    const times = rows.map((r) => r.at);
    // Every tick once: consecutive whole seconds, from the first after the create to the pause.
    expect(rows.every((r) => r.n === 1)).toBe(true);
    expect(times.every((t, i) => i === 0 || t - (times[i - 1] as number) === 1000)).toBe(true);
    expect(times[0]).toBeLessThanOrEqual(Math.ceil(start / 1000) * 1000 + 1000);
    expect(times.at(-1)).toBeGreaterThanOrEqual(Math.floor(end / 1000) * 1000 - 1000);
    expect(rows.length).toBeGreaterThanOrEqual(28);
    // The ticks of the outage are there too (fired late, by the new workers).
    const outage = times.filter((t) => t > down && t < up);
    expect(outage.length).toBeGreaterThanOrEqual(Math.floor((up - down) / 1000) - 1);
    console.log(
      `[schedules] ${rows.length} ticks in ${((end - start) / 1000).toFixed(1)} s, each once; ${outage.length} during the ${((up - down) / 1000).toFixed(1)} s without workers`,
    );

    // They are ordinary tasks: the dispatcher hands them out and they complete.
    await waitFor(
      async () => {
        const [left] = await db.sql<{ n: number }[]>`
          select count(*)::int as n from tasks where schedule_id = ${id} and status <> 'COMPLETED'`;
        return left?.n === 0;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "the schedule's tasks completed" },
    );
    const [wrong] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from tasks where schedule_id = ${id} and output <> '42'::jsonb`;
    expect(wrong?.n).toBe(0);
    const got = await call('GET', `/schedules/${id}`, keys.reader);
    expect(got.body.runs).toHaveLength(10);
    expect(got.body.runs[0]).toMatchObject({
      status: 'COMPLETED',
      scheduledFor: new Date(times.at(-1) ?? 0).toISOString(),
    });
    // Each run's record names its schedule and its tick.
    const run = await call('GET', `/tasks/${got.body.runs[0].id}`, keys.reader);
    expect(run.body).toMatchObject({ scheduleId: id, scheduledFor: got.body.runs[0].scheduledFor });
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  }, 120_000);
});
