/**
 * The HTTP edge, safe by default: what a client can send (ids, bodies, batches, slow bodies, random
 * keys) and what it is told (errors, headers). In both queue modes.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient, hashApiKey } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, startTcpProxy, type TcpProxy, type TestEnv } from '@tasker/testing';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { Authenticator } from '../src/auth.ts';
import type { AppRouter } from '../src/index.ts';
import { startServer, type TaskerServer } from '../src/server.ts';

const run = promisify(execFile);

interface Started {
  env: TestEnv;
  server: TaskerServer;
  url: string;
  /** With `behindProxy`: PostgreSQL as the server reaches it, to cut (`pg.down()`). */
  pg?: TcpProxy;
}
const started: Started[] = [];

/** A server of its own (no worker), on a database of its own; with `behindProxy`, one that can be cut. */
async function start(vars: Record<string, string> = {}, { behindProxy = false } = {}): Promise<Started> {
  let pg: TcpProxy | undefined;
  if (behindProxy) {
    const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
    pg = await startTcpProxy(Number(url.port || 5432));
    url.port = String(pg.port);
    url.pathname = `/tasker_test_edge_${Date.now()}_${process.pid}`;
    vars = { ...vars, DATABASE_URL: url.toString() };
  }
  const env = createTestEnv({ DATABASE_POOL_SIZE: '4', ...vars });
  const parsed = loadEnv(env.vars);
  const server = await startServer(parsed, createLogger(parsed, 'test-edge'));
  const one = { env, server, url: server.url, pg };
  started.push(one);
  return one;
}

afterAll(async () => {
  for (const { server, env, pg } of started.reverse()) {
    await server.close();
    await pg?.up().catch(() => {}); // the test database is dropped through it
    await env.cleanup();
    await pg?.close();
  }
});

/** Sends raw bytes and collects the answer until the server closes or `ms` pass. */
function raw(url: string, text: string, ms = 3000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString();
    });
    socket.on('error', reject);
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

const BODY_LIMIT = 64 * 1024;
const REQUEST_TIMEOUT_MS = 2000;

describe('a development server (AUTH_MODE=disabled)', () => {
  let dev: Started;
  let db: DbClient;
  beforeAll(async () => {
    dev = await start({
      BODY_LIMIT_BYTES: String(BODY_LIMIT),
      HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      HTTP_HEADERS_TIMEOUT_MS: '1000',
    });
    db = createDb(dev.env.databaseUrl, { max: 1 });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('serves /metrics to anyone (a developer machine, AUTH_MODE=disabled)', async () => {
    const res = await fetch(`${dev.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^# HELP /m);
  });

  it('sends security headers: a CSP without framing on /ui and /docs, nosniff and no framing on the API', async () => {
    for (const path of [
      '/ui',
      '/ui/tasks',
      '/docs/static/index.html',
      '/healthz',
      '/openapi.json',
      '/tasks',
    ]) {
      const res = await fetch(`${dev.url}${path}`);
      await res.arrayBuffer();
      expect(res.status, path).toBeLessThan(400);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('x-frame-options'), path).toBe('DENY');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("script-src 'self'");
      // Swagger UI adds a <style> element at run time; scripts are never inline.
      if (path.startsWith('/docs')) expect(csp, path).toContain("style-src 'self' 'unsafe-inline'");
      else expect(csp, path).not.toContain('unsafe-inline');
    }
  });

  describe('x-request-id', () => {
    it('echoes a well-formed one, and replaces one too long or with characters outside [A-Za-z0-9._:-]', async () => {
      const id = async (sent: string) =>
        (await fetch(`${dev.url}/healthz`, { headers: { 'x-request-id': sent } })).headers.get(
          'x-request-id',
        );
      expect(await id('req-42.a:b_c')).toBe('req-42.a:b_c');
      expect(await id('a'.repeat(128))).toBe('a'.repeat(128));
      const long = await id('a'.repeat(129));
      const spaced = await id('evil id <script>');
      for (const generated of [long, spaced]) expect(generated).toMatch(/^[0-9a-f-]{36}$/);
      // A control character (here a tab) through a raw socket: fetch would refuse to send it.
      const answer = await raw(
        dev.url,
        'GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: a\tb\r\nConnection: close\r\n\r\n',
      );
      const echoed = /^x-request-id: (.*)$/im.exec(answer)?.[1]?.trim();
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
    });
  });

  describe('a failure that is a bug (a database error other than "unavailable")', () => {
    it('answers 500 with generic words on both doors, never the database text', async () => {
      const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: `${dev.url}/trpc` })] });
      await db.sql`ALTER TABLE tasks RENAME TO tasks_hidden_by_test`;
      try {
        const rest = await fetch(`${dev.url}/tasks/${randomUUID()}`);
        expect(rest.status).toBe(500);
        expect(await rest.json()).toEqual({
          error: 'Internal server error',
          code: 'INTERNAL_SERVER_ERROR',
          status: 500,
        });
        const error = await trpc.getTask.query({ id: randomUUID() }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(TRPCClientError);
        const { message, data } = error as TRPCClientError<AppRouter>;
        expect(message).toBe('Internal server error');
        expect(data).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 });
        expect(JSON.stringify(data)).not.toMatch(/tasks|relation/);
      } finally {
        await db.sql`ALTER TABLE tasks_hidden_by_test RENAME TO tasks`;
      }
    });
  });

  describe('timeouts', () => {
    it('cuts a client that sends its headers, then drips its body a byte a second, within the bound', async () => {
      const { hostname, port } = new URL(dev.url);
      const socket = connect(Number(port), hostname);
      await new Promise((resolve) => socket.once('connect', resolve));
      const opened = performance.now();
      socket.write(
        'POST /run-task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n',
      );
      let answer = '';
      socket.on('data', (chunk) => {
        answer += chunk.toString();
      });
      const drip = setInterval(() => socket.writable && socket.write('{'), 1000);
      const closedAfter = await new Promise<number>((resolve) => {
        socket.once('close', () => resolve(performance.now() - opened));
        socket.once('error', () => {});
        setTimeout(() => socket.destroy(), 15_000);
      });
      clearInterval(drip);
      expect(closedAfter).toBeLessThan(REQUEST_TIMEOUT_MS + 2000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
      expect(body).toMatchObject({ code: 'TIMEOUT', status: 408 });
    });

    it('cuts a client that never finishes its headers', async () => {
      const opened = performance.now();
      const answer = await raw(dev.url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 10_000);
      expect(performance.now() - opened).toBeLessThan(REQUEST_TIMEOUT_MS + 2000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    });

    it('leaves SSE streams and tRPC subscriptions open past the bound', async () => {
      const submitted = await fetch(`${dev.url}/run-task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          task_name: 'sum_two_numbers',
          task_parameters: { a: 1, b: 2 },
          delay_ms: 600_000,
        }),
      });
      const { task_uuid: id } = (await submitted.json()) as { task_uuid: string };
      const stop = new AbortController();
      const streams = await Promise.all([
        fetch(`${dev.url}/tasks/${id}/events`, { signal: stop.signal }),
        fetch(`${dev.url}/trpc/onTaskUpdate?input=${encodeURIComponent(JSON.stringify({ id }))}`, {
          signal: stop.signal,
        }),
      ]);
      const ended = streams.map(() => false);
      for (const [i, res] of streams.entries()) {
        expect(res.status).toBe(200);
        void (async () => {
          try {
            for await (const _ of res.body as AsyncIterable<Uint8Array>);
          } catch {}
          ended[i] = true;
        })();
      }
      await new Promise((resolve) => setTimeout(resolve, REQUEST_TIMEOUT_MS * 2));
      expect(ended).toEqual([false, false]);
      stop.abort();
    });
  });

  describe('a body over the limit', () => {
    it("answers 413 with its message to Node's fetch sending a body with a Content-Length", async () => {
      for (const path of ['/run-task', '/tasks']) {
        const res = await fetch(`${dev.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ task_name: 'x', task_parameters: { big: 'x'.repeat(8_000_000) } }),
        });
        expect(res.status).toBe(413);
        expect(await res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', status: 413 });
      }
    });
  });
});

const RATE_LIMIT = 30;
const MAX_BATCH = 15;

/** `POST /trpc/runTask,runTask,…?batch=1`: `calls` sums in one request. */
async function runBatch(url: string, key: string, calls: number, tenant = 'batch') {
  const body = Object.fromEntries(
    Array.from({ length: calls }, (_, i) => [
      String(i),
      { task_name: 'sum_two_numbers', task_parameters: { a: i, b: tenant.length } },
    ]),
  );
  const res = await fetch(`${url}/trpc/${Array(calls).fill('runTask').join(',')}?batch=1`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('a production server (AUTH_MODE=required, RATE_LIMIT_PER_MINUTE=30)', () => {
  let prod: Started;
  let db: DbClient;
  let keys: ApiKeyStore;
  const newKey = async (scopes: ApiKeyScope[] = ['tasks:write', 'tasks:read'], tenantId = 'edge') =>
    (await keys.create({ tenantId, name: 'edge', scopes, expiresAt: null })).key;
  beforeAll(async () => {
    prod = await start(
      {
        AUTH_MODE: 'required',
        RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
        BODY_LIMIT_BYTES: String(BODY_LIMIT),
        TRPC_MAX_BATCH: String(MAX_BATCH),
      },
      { behindProxy: true },
    );
    db = createDb(prod.env.databaseUrl, { max: 1 });
    keys = new ApiKeyStore(db.db);
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('a body over the limit', () => {
    it("answers 413 with its message to Node's fetch streaming a body, every time (not EPIPE)", async () => {
      // The client in a process of its own, as in real use: sharing the server's event loop hides the race.
      const client = `
        const outcomes = [];
        for (let i = 0; i < 10; i++) {
          const chunk = new TextEncoder().encode('x'.repeat(16 * 1024));
          let sent = 0;
          const body = new ReadableStream({
            async pull(controller) { if (sent++ < 30) controller.enqueue(chunk); else controller.close(); },
          });
          try {
            const res = await fetch(process.argv[1], {
              method: 'POST', body, duplex: 'half',
              headers: { 'content-type': 'application/json', authorization: 'Bearer ' + process.argv[2] },
            });
            outcomes.push(res.status + ' ' + (await res.json()).error);
          } catch (error) {
            outcomes.push(String(error.cause?.code ?? error.message));
          }
        }
        console.log(JSON.stringify(outcomes));`;
      const { stdout } = await run(process.execPath, [
        '--input-type=module',
        '-e',
        client,
        `${prod.url}/run-task`,
        await newKey(),
      ]);
      expect(JSON.parse(stdout)).toEqual(Array(10).fill('413 Request body is too large'));
    });
  });

  describe('tRPC batches', () => {
    it('count each call against the rate limit: 60 calls in 5 batches store at most 30 tasks', async () => {
      const key = await newKey(['tasks:write'], 'batch');
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await runBatch(prod.url, key, 12)).status);
      expect(statuses).toEqual([200, 200, 429, 429, 429]);
      const reader = await newKey(['tasks:read'], 'batch');
      const listed = await fetch(`${prod.url}/tasks?limit=500`, {
        headers: { authorization: `Bearer ${reader}` },
      });
      const { tasks } = (await listed.json()) as { tasks: unknown[] };
      expect(tasks.length).toBe(24);
    });

    it(`refuse a batch of more than TRPC_MAX_BATCH (${MAX_BATCH}) calls with a 400 in tRPC's shape, running none`, async () => {
      const key = await newKey(['tasks:write', 'tasks:read'], 'big-batch');
      expect((await runBatch(prod.url, key, MAX_BATCH, 'big-batch')).status).toBe(200);
      const over = await runBatch(prod.url, key, MAX_BATCH + 1, 'big-batch');
      expect(over.status).toBe(400);
      expect(over.body).toMatchObject({
        error: { message: expect.stringMatching(/batch/i), data: { code: 'BAD_REQUEST', httpStatus: 400 } },
      });
      // Far past Fastify's default 100-character path parameter: still tRPC's answer.
      expect((await runBatch(prod.url, key, MAX_BATCH * 2, 'big-batch')).status).toBe(400);
      // Queries batched over GET too.
      const input = encodeURIComponent(
        JSON.stringify(Object.fromEntries(Array.from({ length: MAX_BATCH + 1 }, (_, i) => [i, {}]))),
      );
      const get = await fetch(
        `${prod.url}/trpc/${Array(MAX_BATCH + 1)
          .fill('whoami')
          .join(',')}?batch=1&input=${input}`,
        { headers: { authorization: `Bearer ${key}` } },
      );
      expect(get.status).toBe(400);
      const listed = await fetch(`${prod.url}/tasks?limit=500`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(((await listed.json()) as { tasks: unknown[] }).tasks.length).toBe(MAX_BATCH);
    });
  });

  describe("/metrics (it shows every tenant's queue)", () => {
    it('is closed in required mode without METRICS_TOKEN: 401 saying how to open it', async () => {
      const res = await fetch(`${prod.url}/metrics`);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: expect.stringContaining('Set METRICS_TOKEN'),
        code: 'UNAUTHORIZED',
        status: 401,
      });
      // An API key is not the metrics token.
      const key = await newKey(['tasks:read']);
      expect(
        (await fetch(`${prod.url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).status,
      ).toBe(401);
    });
  });

  // Last: it spends this client IP's budget.
  describe('keys looked up behind a per-IP budget', () => {
    it('random well-formed keys cost a lookup each only until the IP has spent its budget', async () => {
      const good = await newKey(['tasks:read']);
      // A key once valid is not held back by its IP's budget.
      expect(
        (await fetch(`${prod.url}/whoami`, { headers: { authorization: `Bearer ${good}` } })).status,
      ).toBe(200);
      const random = () => `tsk_${randomBytes(32).toString('base64url')}`;
      const statuses: number[] = [];
      for (let i = 0; i < RATE_LIMIT + 5; i++) {
        const res = await fetch(`${prod.url}/tasks`, { headers: { authorization: `Bearer ${random()}` } });
        statuses.push(res.status);
      }
      expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(RATE_LIMIT);
      expect(statuses.at(-1)).toBe(429);
      // Proof that no lookup happens now: with PostgreSQL cut, a new random key is a 429, not a 503.
      await prod.pg?.down();
      try {
        const res = await fetch(`${prod.url}/tasks`, { headers: { authorization: `Bearer ${random()}` } });
        expect(res.status).toBe(429);
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(await res.json()).toMatchObject({ code: 'TOO_MANY_REQUESTS', status: 429 });
      } finally {
        await prod.pg?.up();
      }
      expect(
        (await fetch(`${prod.url}/whoami`, { headers: { authorization: `Bearer ${good}` } })).status,
      ).toBe(200);
    });
  });
});

describe("the Authenticator's key caches", () => {
  it('keep a valid key through a flood of random ones, and look each refused key up once', async () => {
    // The clock stands still: the flood happens within the second a valid key is trusted.
    vi.useFakeTimers({ toFake: ['Date'] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const good = `tsk_${randomBytes(32).toString('base64url')}`;
    const lookups: string[] = [];
    const store = {
      findByHash: async (hash: string) => {
        lookups.push(hash);
        return hash === hashApiKey(good)
          ? { id: randomUUID(), tenantId: 't', scopes: ['tasks:read'], revokedAt: null, expiresAt: null }
          : undefined;
      },
      touch: async () => {},
    };
    const log = createLogger(loadEnv({ DATABASE_URL: 'postgres://x/y', LOG_LEVEL: 'silent' }), 'test');
    const auth = new Authenticator(store as unknown as ApiKeyStore, 'required', log);
    const bearer = (key: string) => `Bearer ${key}`;
    expect((await auth.authenticate(bearer(good))).ok).toBe(true);
    const unknown = `tsk_${randomBytes(32).toString('base64url')}`;
    expect(await auth.authenticate(bearer(unknown))).toEqual({ ok: false, reason: 'Unknown API key' });
    expect(await auth.authenticate(bearer(unknown))).toEqual({ ok: false, reason: 'Unknown API key' });
    expect(auth.wouldLookUp(bearer(unknown))).toBe(false);
    expect(lookups.length).toBe(2); // the refused key was looked up once
    for (let i = 0; i < 20_000; i++)
      await auth.authenticate(bearer(`tsk_${randomBytes(32).toString('base64url')}`));
    lookups.length = 0;
    expect((await auth.authenticate(bearer(good))).ok).toBe(true);
    expect(lookups).toEqual([]); // still cached: the flood evicted only refused keys
    expect(auth.wouldLookUp(bearer(good))).toBe(false);
    expect(auth.wouldLookUp(bearer(`tsk_${randomBytes(32).toString('base64url')}`))).toBe(true);
    expect(auth.wouldLookUp('Bearer not-a-key')).toBe(false);
    await auth.close();
  });
});
