/**
 * Identity (AUTH_MODE=required): API keys, scopes, tenants on every route and stream, revocation
 * across servers, and rate limits shared by servers.
 */
import { randomUUID } from 'node:crypto';
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, onRedis, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
} from '@trpc/client';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let second: TaskerServer;
let worker: AppProcess;
let db: DbClient;
let keys: ApiKeyStore;
let url: string;

const key = async (tenantId: string, scopes: ApiKeyScope[], expiresAt: Date | null = null) =>
  (await keys.create({ tenantId, name: 'test', scopes, expiresAt })).key;

beforeAll(async () => {
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'));
  second = await startServer(parsed, createLogger(parsed, 'test-2'));
  url = server.url;
  worker = await spawnApp('worker', env.vars);
  db = createDb(env.databaseUrl, { max: 2 });
  keys = new ApiKeyStore(db.db);
});
afterAll(async () => {
  await worker?.stop();
  await second?.close();
  await server?.close();
  await db?.close();
  await env?.cleanup();
});

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function call(
  method: string,
  path: string,
  bearer?: string,
  body?: unknown,
  base = url,
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
}

async function submit(bearer: string, parameters = { a: 1, b: 2 }, extra = {}) {
  const res = await call('POST', '/run-task', bearer, {
    task_name: 'sum_two_numbers',
    task_parameters: parameters,
    ...extra,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return (res.body as { task_uuid: string }).task_uuid;
}

function trpcFor(bearer: string, base = url) {
  const withKey: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${bearer}`);
    return fetch(input, { ...init, headers });
  };
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: `${base}/trpc`,
          EventSource,
          eventSourceOptions: () => ({ fetch: withKey }) as EventSourceInit,
        }),
        false: httpBatchLink({ url: `${base}/trpc`, fetch: withKey }),
      }),
    ],
  });
}

/** What a tRPC call ended with: its data, or its error's code, HTTP status and message. */
async function outcome(promise: Promise<unknown>) {
  try {
    return { ok: true, data: await promise };
  } catch (error) {
    if (!(error instanceof TRPCClientError)) throw error;
    const data = error.data as { code?: string; httpStatus?: number } | undefined;
    return { ok: false, code: data?.code, httpStatus: data?.httpStatus, message: error.message };
  }
}

/** The first event or error of a subscription, or 'nothing' after `ms`. */
function firstOf(
  subscribe: (handlers: { onData(d: unknown): void; onError(e: unknown): void }) => { unsubscribe(): void },
  ms = 1500,
) {
  return new Promise<unknown>((resolve) => {
    let sub: { unsubscribe(): void } | undefined;
    const timer = setTimeout(() => {
      sub?.unsubscribe();
      resolve('nothing');
    }, ms);
    sub = subscribe({
      onData: (data) => {
        clearTimeout(timer);
        sub?.unsubscribe();
        resolve({ data });
      },
      onError: (error) => {
        clearTimeout(timer);
        sub?.unsubscribe();
        const e = error as TRPCClientError<AppRouter>;
        resolve({ code: (e.data as { code?: string } | undefined)?.code, message: e.message });
      },
    });
  });
}

describe('401 and 403', () => {
  it('refuses no key, a malformed, unknown, revoked or expired key (401, WWW-Authenticate: Bearer), and a key without the scope (403 naming it)', async () => {
    const revoked = await key('acme', ['tasks:write', 'tasks:read']);
    const revokedInfo = (await keys.list('acme')).find((k) => revoked.startsWith(k.prefix));
    if (revokedInfo) await keys.revoke(revokedInfo.id);
    const expired = await key('acme', ['tasks:write', 'tasks:read'], new Date(Date.now() - 1000));
    const readOnly = await key('acme', ['tasks:read']);
    const body = { task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } };
    const table: [string, string | undefined, number, RegExp][] = [
      ['no key', undefined, 401, /No API key/],
      ['malformed key', 'not-a-key', 401, /Malformed/],
      ['unknown key', `tsk_${'A'.repeat(43)}`, 401, /Unknown API key/],
      ['revoked key', revoked, 401, /revoked/],
      ['expired key', expired, 401, /expired/],
      ['read-only key running a task', readOnly, 403, /"tasks:write" scope/],
    ];
    for (const [name, bearer, status, says] of table) {
      const res = await call('POST', '/run-task', bearer, body);
      expect(res.status, name).toBe(status);
      expect(res.body, name).toMatchObject({ status, error: expect.stringMatching(says) });
      if (status === 401) expect(res.headers.get('www-authenticate'), name).toBe('Bearer');
    }
    // Also over tRPC, and on the event stream.
    const noKey = await call(
      'GET',
      `/trpc/getTask?input=${encodeURIComponent(JSON.stringify({ id: randomUUID() }))}`,
    );
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('www-authenticate')).toBe('Bearer');
    expect((await call('GET', `/tasks/${randomUUID()}/events`)).status).toBe(401);
    // POST /tasks is scoped the same way, and makes the task in the key's tenant only.
    const created = { name: 'sum_two_numbers', input: { a: 1, b: 2 } };
    expect((await call('POST', '/tasks', undefined, created)).status).toBe(401);
    expect((await call('POST', '/tasks', readOnly, created)).status).toBe(403);
    const writer = await key('acme', ['tasks:write', 'tasks:read']);
    const made = await call('POST', '/tasks', writer, created);
    expect(made.status).toBe(201);
    const madeId = (made.body as { id: string }).id;
    expect((await call('GET', `/tasks/${madeId}`, writer)).status).toBe(200);
    const stranger = await key('another-tenant', ['tasks:read']);
    expect((await call('GET', `/tasks/${madeId}`, stranger)).status).toBe(404);
    // A read-only key reads; an operator-only route refuses it.
    expect((await call('GET', `/tasks/${randomUUID()}`, readOnly)).status).toBe(404);
    const pause = await call('POST', '/queue/pause', readOnly);
    expect(pause.status).toBe(403);
    expect(pause.body).toMatchObject({ error: expect.stringContaining('"operator"') });
  });

  it('leaves /healthz, /readyz and /openapi.json open', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json'])
      expect((await call('GET', path)).status, path).toBe(200);
  });
});

describe('tenants', () => {
  it("answers tenant B about tenant A's task exactly as about an unknown id, on every route and stream", async () => {
    const a = await key('tenant-a', ['tasks:write', 'tasks:read']);
    const b = await key('tenant-b', ['tasks:write', 'tasks:read']);
    const mine = await submit(a);
    await waitFor(
      async () =>
        ((await call('GET', `/tasks/${mine}`, a)).body as { status: string }).status === 'COMPLETED',
    );
    const unknown = randomUUID();
    const rest: [string, (id: string) => string][] = [
      ['GET', (id) => `/tasks/${id}`],
      ['GET', (id) => `/get-task-output?task_uuid=${id}`],
      ['POST', (id) => `/tasks/${id}/cancel`],
      ['POST', (id) => `/tasks/${id}/retry`],
      ['GET', (id) => `/tasks/${id}/events`],
    ];
    for (const [method, path] of rest) {
      const theirs = await call(method, path(mine), b);
      const none = await call(method, path(unknown), b);
      expect(theirs.status, path(mine)).toBe(404);
      expect({ status: theirs.status, body: theirs.body }, path(mine)).toEqual({
        status: none.status,
        body: none.body,
      });
    }
    const trpc = trpcFor(b);
    for (const [name, run] of [
      ['getTask', (id: string) => trpc.getTask.query({ id })],
      ['getTaskOutput', (id: string) => trpc.getTaskOutput.query({ task_uuid: id })],
      ['cancelTask', (id: string) => trpc.cancelTask.mutate({ id })],
      ['retryTask', (id: string) => trpc.retryTask.mutate({ id })],
    ] as const) {
      const theirs = await outcome(run(mine));
      expect(theirs, name).toMatchObject({ ok: false, code: 'NOT_FOUND' });
      expect(theirs, name).toEqual(await outcome(run(unknown)));
    }
    const subscribeTo = (id: string) => firstOf((handlers) => trpc.onTaskUpdate.subscribe({ id }, handlers));
    const theirs = await subscribeTo(mine);
    expect(theirs).toMatchObject({ code: 'NOT_FOUND' });
    expect(theirs).toEqual(await subscribeTo(unknown));
    // And A still sees it all.
    expect((await call('GET', `/tasks/${mine}`, a)).status).toBe(200);
    expect(await outcome(trpcFor(a).getTask.query({ id: mine }))).toMatchObject({ ok: true });
  });

  it("B's list and onTasksUpdate never show A's tasks", async () => {
    const a = await key('list-a', ['tasks:write', 'tasks:read']);
    const b = await key('list-b', ['tasks:write', 'tasks:read']);
    const seenByB: string[] = [];
    const sub = trpcFor(b).onTasksUpdate.subscribe({}, { onData: (event) => seenByB.push(event.id) });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const aTasks = await Promise.all(Array.from({ length: 5 }, (_, i) => submit(a, { a: i, b: 0 })));
    const bTask = await submit(b);
    await waitFor(() => seenByB.includes(bTask));
    await waitFor(async () => {
      const rows = await Promise.all(
        aTasks.map(async (id) => (await call('GET', `/tasks/${id}`, a)).body as { status: string }),
      );
      return rows.every((r) => r.status === 'COMPLETED');
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    sub.unsubscribe();
    expect(seenByB.filter((id) => aTasks.includes(id))).toEqual([]);
    const listB = (await call('GET', '/tasks?limit=500', b)).body as { tasks: { id: string }[] };
    expect(listB.tasks.map((t) => t.id)).toEqual([bTask]);
    const listA = (await call('GET', '/tasks?limit=500', a)).body as { tasks: { id: string }[] };
    expect(listA.tasks.map((t) => t.id).sort()).toEqual([...aTasks].sort());
  });

  it('the same idempotency key in A and B makes two tasks', async () => {
    const a = await key('idem-a', ['tasks:write', 'tasks:read']);
    const b = await key('idem-b', ['tasks:write', 'tasks:read']);
    const first = await submit(a, { a: 1, b: 1 }, { idempotency_key: 'order-42' });
    const second = await submit(b, { a: 1, b: 1 }, { idempotency_key: 'order-42' });
    expect(second).not.toBe(first);
    expect(await submit(a, { a: 1, b: 1 }, { idempotency_key: 'order-42' })).toBe(first);
  });
});

describe('key use', () => {
  it('records last_used_at once, not on every request (at most once a minute per key)', async () => {
    const k = await key('usage', ['tasks:read']);
    const info = async () => (await keys.list('usage'))[0];
    expect((await info())?.lastUsedAt).toBeNull();
    for (let i = 0; i < 5; i++) expect((await call('GET', `/tasks/${randomUUID()}`, k)).status).toBe(404);
    const first = await waitFor(async () => (await info())?.lastUsedAt ?? undefined, { timeoutMs: 5000 });
    for (let i = 0; i < 5; i++) await call('GET', `/tasks/${randomUUID()}`, k);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await info())?.lastUsedAt).toEqual(first);
  });
});

describe('keys over HTTP', () => {
  it('an operator key creates, lists and revokes keys of any tenant; a key revoked through server 1 is refused by server 2 within 2 s', async () => {
    const admin = await key('ops', ['operator']);
    const created = await call('POST', '/api-keys', admin, {
      tenant: 'acme',
      name: 'ci',
      scopes: ['tasks:read'],
    });
    expect(created.status).toBe(200);
    const made = created.body as { id: string; key: string; tenant: string; scopes: string[] };
    expect(made).toMatchObject({
      tenant: 'acme',
      scopes: ['tasks:read'],
      key: expect.stringMatching(/^tsk_/),
    });
    const listed = (await call('GET', '/api-keys?tenant=acme', admin)).body as {
      keys: Record<string, unknown>[];
    };
    expect(listed.keys.map((k) => k.id)).toContain(made.id);
    expect(JSON.stringify(listed)).not.toContain(made.key);
    // The key works on server 2 (which now has it cached).
    expect((await call('GET', `/tasks/${randomUUID()}`, made.key, undefined, second.url)).status).toBe(404);
    const revoked = await call('DELETE', `/api-keys/${made.id}`, admin);
    expect(revoked.status).toBe(200);
    const revokedAt = Date.now();
    await waitFor(
      async () =>
        (await call('GET', `/tasks/${randomUUID()}`, made.key, undefined, second.url)).status === 401,
      {
        timeoutMs: 5000,
        intervalMs: 50,
      },
    );
    expect(Date.now() - revokedAt).toBeLessThan(2000);
    expect((await call('DELETE', `/api-keys/${made.id}`, admin)).status).toBe(404);
    // Not an admin: 403.
    expect((await call('GET', '/api-keys', made.key)).status).toBe(401);
  });
});

describe("one tenant's key does not govern the others", () => {
  it("a tenant's admin key manages its own tenant's keys only; each key records the key that made it", async () => {
    const admin = await key('gov-a', ['tasks:read', 'admin']);
    const adminId = (await keys.list('gov-a'))[0]?.id;
    const theirs = (await keys.create({ tenantId: 'gov-b', name: 'b', scopes: ['tasks:read'] })).info;
    const ops = (await keys.create({ tenantId: 'gov-a', name: 'ops', scopes: ['operator'] })).info;

    // Its own tenant (the default): made, recorded as made by this admin key.
    const mine = await call('POST', '/api-keys', admin, { name: 'ci', scopes: ['tasks:write', 'admin'] });
    expect(mine.status, JSON.stringify(mine.body)).toBe(200);
    expect(mine.body).toMatchObject({ tenant: 'gov-a', createdBy: adminId });
    // Another tenant's, or the operator scope: 403 saying why.
    const other = await call('POST', '/api-keys', admin, { tenant: 'gov-b', name: 'x', scopes: ['admin'] });
    expect(other.status).toBe(403);
    expect(other.body).toMatchObject({ error: expect.stringContaining('its own tenant only') });
    const escalate = await call('POST', '/api-keys', admin, { name: 'x', scopes: ['operator'] });
    expect(escalate.status).toBe(403);
    expect(escalate.body).toMatchObject({ error: expect.stringContaining('operator scope') });
    // Lists its own tenant's keys only; asking for another tenant's is a 403.
    const listed = (await call('GET', '/api-keys', admin)).body as { keys: { tenant: string; id: string }[] };
    expect(new Set(listed.keys.map((k) => k.tenant))).toEqual(new Set(['gov-a']));
    expect(listed.keys.map((k) => k.id)).not.toContain(theirs.id);
    expect((await call('GET', '/api-keys?tenant=gov-b', admin)).status).toBe(403);
    // Another tenant's key is unknown to it (404, as an unknown id), and stays live.
    const revoke = await call('DELETE', `/api-keys/${theirs.id}`, admin);
    const unknown = await call('DELETE', `/api-keys/${randomUUID()}`, admin);
    expect({ status: revoke.status, body: revoke.body }).toEqual({
      status: unknown.status,
      body: unknown.body,
    });
    expect(revoke.status).toBe(404);
    expect((await keys.get(theirs.id))?.revokedAt).toBeNull();
    // Its tenant's operator key is not its to revoke.
    expect((await call('DELETE', `/api-keys/${ops.id}`, admin)).status).toBe(403);
    expect((await keys.get(ops.id))?.revokedAt).toBeNull();
    // Nor is the shared queue: pausing it (or a task type) is an operator's act.
    const pause = await call('POST', '/queue/pause', admin, { task_name: 'sum_two_numbers' });
    expect(pause.status).toBe(403);
    expect(pause.body).toMatchObject({ error: 'This API key lacks the "operator" scope' });
    expect((await call('GET', '/queue', admin)).status).toBe(403);
    // A key made by the CLI against the database has no creator.
    expect((await keys.get(theirs.id))?.createdBy).toBeNull();
  });

  it('an operator key acts across tenants: any tenant, the operator scope, the whole queue, a task type', async () => {
    const operator = await key('gov-ops', ['operator']);
    const operatorId = (await keys.list('gov-ops'))[0]?.id;
    const made = await call('POST', '/api-keys', operator, {
      tenant: 'gov-c',
      name: 'op2',
      scopes: ['operator'],
    });
    expect(made.status).toBe(200);
    expect(made.body).toMatchObject({ tenant: 'gov-c', scopes: ['operator'], createdBy: operatorId });
    const all = (await call('GET', '/api-keys', operator)).body as { keys: { tenant: string }[] };
    expect(all.keys.some((k) => k.tenant === 'gov-c') && all.keys.some((k) => k.tenant === 'gov-ops')).toBe(
      true,
    );
    for (const body of [{ task_name: 'find_longest_consecutive_letters' }, {}]) {
      const paused = await call('POST', '/queue/pause', operator, body);
      expect(paused.status, JSON.stringify(body)).toBe(200);
      expect((await call('POST', '/queue/resume', operator, body)).status).toBe(200);
    }
    const second = (made.body as { key: string }).key;
    expect((await call('DELETE', `/api-keys/${(made.body as { id: string }).id}`, operator)).status).toBe(
      200,
    );
    await waitFor(async () => (await call('GET', '/queue', second)).status === 401, { timeoutMs: 5000 });
  });
});

/** Two servers on one database with AUTH_MODE=required and 10 requests a minute per key. */
async function withTwoLimitedServers(
  work: (servers: {
    one: TaskerServer;
    two: TaskerServer;
    newKey: (name: string) => Promise<string>;
  }) => Promise<void>,
): Promise<void> {
  const limited = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '10' });
  const parsed = loadEnv(limited.vars);
  const one = await startServer(parsed, createLogger(parsed, 'rl-1'));
  const two = await startServer(parsed, createLogger(parsed, 'rl-2'));
  const limitedDb = createDb(limited.databaseUrl, { max: 1 });
  const newKey = async (name: string) =>
    (await new ApiKeyStore(limitedDb.db).create({ tenantId: 'x', name, scopes: ['tasks:read'] })).key;
  try {
    await work({ one, two, newKey });
  } finally {
    await one.close();
    await two.close();
    await limitedDb.close();
    await limited.cleanup();
  }
}

describe('rate limits', () => {
  it.runIf(onRedis)(
    'two servers on one Redis share one budget per key: over it, both answer 429 with Retry-After and RateLimit-*',
    async () =>
      withTwoLimitedServers(async ({ one, two, newKey }) => {
        const k = await newKey('rl');
        const statuses: number[] = [];
        for (let i = 0; i < 10; i++)
          statuses.push(
            (await call('GET', `/tasks/${randomUUID()}`, k, undefined, i % 2 ? one.url : two.url)).status,
          );
        expect(statuses).toEqual(Array(10).fill(404));
        for (const base of [one.url, two.url]) {
          const res = await call('GET', `/tasks/${randomUUID()}`, k, undefined, base);
          expect(res.status).toBe(429);
          expect(res.body).toMatchObject({
            status: 429,
            code: 'TOO_MANY_REQUESTS',
            error: expect.stringContaining('Rate limit'),
          });
          expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
          expect(res.headers.get('ratelimit-limit')).toBe('10');
          expect(res.headers.get('ratelimit-remaining')).toBe('0');
        }
        // Another key has its own budget.
        const other = await newKey('rl2');
        expect((await call('GET', `/tasks/${randomUUID()}`, other, undefined, one.url)).status).toBe(404);
      }),
  );

  it.runIf(!onRedis)(
    'PostgreSQL-only mode: each server counts a key on its own, in memory (see app.ts)',
    async () =>
      withTwoLimitedServers(async ({ one, two, newKey }) => {
        const k = await newKey('rl');
        const get = async (base: string) =>
          (await call('GET', `/tasks/${randomUUID()}`, k, undefined, base)).status;
        for (let i = 0; i < 10; i++) expect(await get(one.url)).toBe(404);
        expect(await get(one.url)).toBe(429);
        expect(await get(two.url)).toBe(404); // its own budget
      }),
  );
});

describe('the old curl lines with a key', () => {
  it('run-task and get-task-output work with -H "Authorization: Bearer $KEY"', async () => {
    const k = await key('curl', ['tasks:write', 'tasks:read']);
    const id = await submit(k, { a: 5, b: 10 });
    const output = await waitFor(async () => {
      const res = await call('GET', `/get-task-output?task_uuid=${id}`, k);
      const out = (res.body as { task_output: { status: string } }).task_output;
      return out.status === 'PENDING' ? undefined : out;
    });
    expect(output).toEqual({ status: 'COMPLETED', result: 15, error: null });
  });
});
