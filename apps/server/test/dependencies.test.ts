import { createLogger, loadEnv } from '@tasker/engine';
import {
  createTestEnv,
  freePort,
  onRedis,
  spawnApp,
  startTcpProxy,
  type TcpProxy,
  type TestEnv,
} from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

let env: TestEnv | undefined;
let server: TaskerServer | undefined;
let proxy: TcpProxy | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await proxy?.up().catch(() => {}); // the test database is dropped through it
  await env?.cleanup();
  env = undefined;
  await proxy?.close();
  proxy = undefined;
});

async function start(vars: Record<string, string>) {
  env = createTestEnv(vars);
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test'));
  return server.url;
}

/** A server whose PostgreSQL is reached through a TCP proxy that the test can cut (`pg.down()`). */
async function startBehindProxy(vars: Record<string, string> = {}): Promise<{ url: string; pg: TcpProxy }> {
  const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
  const pg = await startTcpProxy(Number(base.port || 5432));
  proxy = pg;
  base.port = String(pg.port);
  base.pathname = `/tasker_test_proxy_${Date.now()}`;
  return { url: await start({ ...vars, DATABASE_URL: base.toString() }), pg };
}

describe('a dependency that is down is a 503 that says which, never a crash or a hang', () => {
  it.runIf(onRedis)(
    'Redis down: /readyz names Redis; submissions are still accepted into PostgreSQL, promptly',
    async () => {
      const url = await start({ REDIS_URL: `redis://127.0.0.1:${await freePort()}/0` });
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        error: 'Redis is unavailable',
        status: 503,
        dependencies: { postgres: 'ok', redis: 'unavailable' },
      });
      const started = performance.now();
      const res = await fetch(`${url}/run-task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } }),
      });
      expect(res.status).toBe(200);
      expect(performance.now() - started).toBeLessThan(1000);
      const { task_uuid } = (await res.json()) as { task_uuid: string };
      const output = await (await fetch(`${url}/get-task-output?task_uuid=${task_uuid}`)).json();
      expect(output).toEqual({ task_output: { status: 'PENDING', result: null, error: null } });
      // What needs Redis itself says so, as a 503.
      const pause = await fetch(`${url}/queue/pause`, { method: 'POST' });
      expect(pause.status).toBe(503);
      expect(await pause.json()).toMatchObject({
        error: 'Redis is unavailable',
        code: 'SERVICE_UNAVAILABLE',
      });
      const cancel = await fetch(`${url}/tasks/${task_uuid}/cancel`, { method: 'POST' });
      expect(cancel.status).toBe(200); // a PENDING task is cancelled in PostgreSQL alone
      expect(await cancel.json()).toMatchObject({ status: 'CANCELLED' });
    },
  );

  it('PostgreSQL down: requests answer 503 naming PostgreSQL, and work again once it is back', async () => {
    const { url, pg } = await startBehindProxy();
    await pg.down();
    const body = JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } });
    const headers = { 'content-type': 'application/json' };
    const res = await fetch(`${url}/run-task`, { method: 'POST', headers, body });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      error: 'PostgreSQL is unavailable',
      code: 'SERVICE_UNAVAILABLE',
    });
    const get = await fetch(`${url}/tasks/${crypto.randomUUID()}`);
    expect(get.status).toBe(503);
    // A plain route (the event stream) answers the same, not a 500.
    const stream = await fetch(`${url}/tasks/${crypto.randomUUID()}/events`);
    expect(stream.status).toBe(503);
    expect(await stream.json()).toMatchObject({ error: 'PostgreSQL is unavailable', status: 503 });
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ error: 'PostgreSQL is unavailable' });
    await pg.up();
    expect((await fetch(`${url}/run-task`, { method: 'POST', headers, body })).status).toBe(200);
  });

  it('PostgreSQL down for a while: every request keeps answering its 503 promptly (no growing reconnection backoff)', async () => {
    const { url, pg } = await startBehindProxy();
    await pg.down();
    const slowest: number[] = [];
    // 8 rounds of 10 concurrent reads: the driver's default backoff (3^n/100 s, to 20 s) would make
    // later rounds wait for seconds before their 503.
    for (let round = 0; round < 8; round++) {
      const times = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const started = performance.now();
          const res = await fetch(`${url}/tasks/${crypto.randomUUID()}`);
          expect(res.status).toBe(503);
          await res.arrayBuffer();
          return performance.now() - started;
        }),
      );
      slowest.push(Math.round(Math.max(...times)));
    }
    expect(Math.max(...slowest), `slowest answer per round (ms): ${slowest.join(', ')}`).toBeLessThan(2500);
    await pg.up();
    const started = performance.now();
    expect((await fetch(`${url}/tasks/${crypto.randomUUID()}`)).status).toBe(404);
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('PostgreSQL down in required mode: the key lookup answers 503, not 401 or 500', async () => {
    const { url, pg } = await startBehindProxy({ AUTH_MODE: 'required' });
    await pg.down();
    const res = await fetch(`${url}/tasks/${crypto.randomUUID()}`, {
      headers: { authorization: `Bearer tsk_${'A'.repeat(43)}` },
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      error: 'PostgreSQL is unavailable',
      code: 'SERVICE_UNAVAILABLE',
    });
    await pg.up();
    expect(
      (
        await fetch(`${url}/tasks/${crypto.randomUUID()}`, {
          headers: { authorization: `Bearer tsk_${'A'.repeat(43)}` },
        })
      ).status,
    ).toBe(401);
  });
});

describe('configuration', () => {
  it('a bad variable stops the process with a message naming it', async () => {
    await expect(
      spawnApp('server', { PORT: 'eighty', WORKER_CONCURRENCY: '-1' }, { timeoutMs: 10_000 }),
    ).rejects.toThrow(/exited with 1[\s\S]*PORT[\s\S]*WORKER_CONCURRENCY/);
  });

  it.each(['server', 'worker'] as const)(
    'the %s, given a PostgreSQL that does not answer, says so in one line naming DATABASE_URL and the address, retries, then exits without a stack trace',
    async (kind) => {
      const port = await freePort(); // nothing listens there
      const started = Date.now();
      const failure = await spawnApp(
        kind,
        {
          // Named to createTestEnv: no pooler in front (TEST_PGBOUNCER_URL), no DATABASE_DIRECT_URL.
          ...createTestEnv({ DATABASE_URL: `postgres://tasker:secret@127.0.0.1:${port}/tasker` }).vars,
          STARTUP_TIMEOUT_MS: '2500',
          LOG_LEVEL: 'info',
        },
        { timeoutMs: 15_000 },
      ).then(
        () => undefined,
        (error: Error) => error.message,
      );
      expect(failure).toMatch(/exited with 1/);
      const line = `cannot reach PostgreSQL at postgres://tasker:***@127.0.0.1:${port}/tasker (DATABASE_URL)`;
      expect(failure).toContain(`${line}: connect ECONNREFUSED`);
      expect(failure).toContain('retrying for up to 2500 ms');
      expect(failure).toContain('gave up after 2500 ms (STARTUP_TIMEOUT_MS)');
      expect(failure).not.toMatch(/^\s+at /m); // no stack trace
      expect(failure).not.toContain('secret');
      expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    },
  );
});
