/**
 * What the dashboard needs of the server: its files at /ui (index.html for its pages, a clear 503
 * before it is built), /ui/config.json, and the whoami and throughput procedures (REST and tRPC).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  spawnApp,
  startFakeOpenAI,
  type TestEnv,
  waitFor,
} from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv;
let server: TaskerServer;
let worker: AppProcess;
let openai: FakeOpenAI;
let db: DbClient;
let dir: string;

const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
  (await new ApiKeyStore(db.db).create({ tenantId, name: 'test', scopes })).key;

async function call(route: string, apiKey?: string, init: RequestInit = {}) {
  const res = await fetch(`${server.url}${route}`, {
    ...init,
    headers: { ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...init.headers },
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tasker-ui-'));
  // Every OpenAI call is refused with a 400: query_chatgpt fails at once (not retried).
  openai = await startFakeOpenAI({ failWith: 400 });
  env = createTestEnv({
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: '0',
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: openai.baseURL,
  });
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'), { dashboardDir: dir });
  worker = await spawnApp('worker', env.vars);
  db = createDb(env.databaseUrl, { max: 1 });
});
afterAll(async () => {
  await worker?.stop();
  await server?.close();
  await db?.close();
  await openai?.close();
  await env?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

describe('/ui', () => {
  it('answers 503 with how to build it while the dashboard is not built, then serves it', async () => {
    const missing = await call('/ui/tasks');
    expect(missing.status).toBe(503);
    expect(missing.json()).toMatchObject({ status: 503, error: expect.stringContaining('pnpm build') });

    await mkdir(path.join(dir, 'assets'));
    await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>Tasker</title>');
    await writeFile(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1);');
    for (const route of ['/ui', '/ui/', '/ui/queue', '/ui/tasks/2b4d2c0e-53a8-4c8f-9a39-0f7f3c1b2d9e']) {
      const page = await call(route);
      expect(page.status, route).toBe(200);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.headers.get('cache-control')).toBe('no-cache');
      expect(page.text).toContain('<title>Tasker</title>');
    }
    const asset = await call('/ui/assets/index-abc123.js');
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    // A missing file is a 404, not the app's page; nothing outside the directory is served.
    expect((await call('/ui/assets/nope.js')).status).toBe(404);
    for (const route of ['/ui/..%2f..%2fpackage.json', '/ui/%2e%2e/%2e%2e/package.json']) {
      const outside = await call(route);
      expect([403, 404], route).toContain(outside.status);
      expect(outside.text).not.toContain('@tasker');
    }
  });

  it('says in /ui/config.json whether a key is needed', async () => {
    const config = await call('/ui/config.json');
    expect(config.status).toBe(200);
    expect(config.json()).toEqual({ authMode: 'required' });
  });
});

describe('whoami', () => {
  it("answers the key's tenant and scopes, over REST and tRPC", async () => {
    const reader = await key('t-who', ['tasks:read']);
    const rest = await call('/whoami', reader);
    expect(rest.status).toBe(200);
    expect(rest.json()).toEqual({
      tenant: 't-who',
      scopes: ['tasks:read'],
      keyId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      authMode: 'required',
    });
    const trpc = await call(`/trpc/whoami?input=${encodeURIComponent('{}')}`, reader);
    expect(trpc.json().result.data.tenant).toBe('t-who');
    expect((await call('/whoami')).status).toBe(401);
    // Any valid key may ask, whatever its scopes (an operator's admin-only key too).
    const admin = await call('/whoami', await key('t-who', ['admin']));
    expect(admin.status).toBe(200);
    expect(admin.json()).toMatchObject({ tenant: 't-who', scopes: ['admin'] });
  });
});

describe('throughput', () => {
  it("counts a tenant's completed and failed tasks per minute over the last hour, and no other tenant's", async () => {
    const writer = await key('t-busy', ['tasks:read', 'tasks:write']);
    const other = await key('t-idle', ['tasks:read']);
    const post = (body: object) =>
      call('/tasks', writer, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const ids: string[] = [];
    for (const a of [1, 2, 3])
      ids.push((await post({ name: 'sum_two_numbers', input: { a, b: 1 } })).json().id);
    ids.push((await post({ name: 'query_chatgpt', input: { prompt: 'refused' } })).json().id);
    await waitFor(
      async () => {
        const page = (await call('/tasks?status=COMPLETED,FAILED', writer)).json();
        return page.tasks.length === 4;
      },
      { timeoutMs: 20_000, what: 'four finished tasks' },
    );

    const before = Date.now();
    const answer = await call('/stats/throughput', writer);
    expect(answer.status).toBe(200);
    const { minutes } = answer.json() as { minutes: { minute: string; completed: number; failed: number }[] };
    expect(minutes).toHaveLength(60);
    const starts = minutes.map((m) => Date.parse(m.minute));
    expect(starts.every((t, i) => i === 0 || t - (starts[i - 1] ?? 0) === 60_000)).toBe(true);
    expect(starts.at(-1)).toBeLessThanOrEqual(before);
    expect(before - (starts.at(-1) ?? 0)).toBeLessThan(120_000);
    const total = minutes.reduce(
      (t, m) => ({ completed: t.completed + m.completed, failed: t.failed + m.failed }),
      {
        completed: 0,
        failed: 0,
      },
    );
    expect(total).toEqual({ completed: 3, failed: 1 });

    const idle = (await call('/stats/throughput', other)).json() as { minutes: typeof minutes };
    expect(idle.minutes.every((m) => m.completed === 0 && m.failed === 0)).toBe(true);
    expect((await call('/stats/throughput')).status).toBe(401);
  });
});
