import { Writable } from 'node:stream';
import { ApiKeyStore, createDb } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { createTestEnv, freePort, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { describe, expect, it } from 'vitest';
import { startServer } from '../src/server.ts';

describe('logs', () => {
  it('at trace level, no API key, OpenAI key or prompt text appears in the server or worker logs', async () => {
    const fake = await startFakeOpenAI({ reply: () => 'fine' });
    const failing = await startFakeOpenAI({ failWith: 500 });
    const env = createTestEnv({
      AUTH_MODE: 'required',
      OPENAI_API_KEY: 'sk-never-log-me-4242',
      OPENAI_BASE_URL: fake.baseURL,
    });
    const server = await spawnApp('server', env.vars, { logLevel: 'trace' });
    const worker = await spawnApp('worker', env.vars, { logLevel: 'trace' });
    const failingWorker = await spawnApp(
      'worker',
      { ...env.vars, OPENAI_BASE_URL: failing.baseURL },
      { logLevel: 'trace' },
    );
    const db = createDb(env.databaseUrl, { max: 1 });
    try {
      const { key } = await new ApiKeyStore(db.db).create({
        tenantId: 't',
        name: 'logs',
        scopes: ['tasks:write', 'tasks:read'],
      });
      const prompts = Array.from({ length: 6 }, (_, i) => `the secret prompt number ${i} zebra-quartz`);
      const ids: string[] = [];
      for (const prompt of prompts) {
        const res = await fetch(`${server.url}/run-task`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ task_name: 'query_chatgpt', task_parameters: { prompt }, max_attempts: 1 }),
        });
        ids.push(((await res.json()) as { task_uuid: string }).task_uuid);
      }
      // A refused key, a bad request, and the tasks run (some fail on the failing model).
      await fetch(`${server.url}/tasks`, { headers: { authorization: `Bearer ${key.slice(0, -2)}xx` } });
      await fetch(`${server.url}/run-task`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          task_name: 'query_chatgpt',
          task_parameters: { prompt: 7, secret: 'zebra-quartz' },
        }),
      });
      await waitFor(
        async () => {
          const rows = await db.sql<
            { n: number }[]
          >`select count(*)::int as n from tasks where status in ('COMPLETED', 'FAILED')`;
          return rows[0]?.n === ids.length;
        },
        { timeoutMs: 20_000 },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const logs = server.output() + worker.output() + failingWorker.output();
      expect(logs.length).toBeGreaterThan(0);
      for (const secret of ['sk-never-log-me-4242', key, key.slice(4, 20), 'zebra-quartz'])
        expect(logs).not.toContain(secret);
    } finally {
      await Promise.all([server.stop(), worker.stop(), failingWorker.stop()]);
      await db.close();
      await env.cleanup();
      await fake.close();
      await failing.close();
    }
  });

  it('every line logged while a request is served carries its request id, echoed in x-request-id', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    // Redis is not there: cancelling a RUNNING task records the request, and the engine logs that
    // its signal could not be sent.
    const env = createTestEnv({ REDIS_URL: `redis://127.0.0.1:${await freePort()}/0`, LOG_LEVEL: 'info' });
    const parsed = loadEnv(env.vars);
    const server = await startServer(parsed, createLogger(parsed, 'test', sink));
    const db = createDb(env.databaseUrl, { max: 1 });
    try {
      const res = await fetch(`${server.url}/run-task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } }),
      });
      expect(res.status).toBe(200);
      const { task_uuid } = (await res.json()) as { task_uuid: string };
      await db.sql`update tasks set status = 'RUNNING', started_at = now(), attempts = 1 where id = ${task_uuid}`;
      const cancel = await fetch(`${server.url}/tasks/${task_uuid}/cancel`, {
        method: 'POST',
        headers: { 'x-request-id': 'req-7f3a' },
      });
      expect(cancel.status).toBe(200);
      expect(cancel.headers.get('x-request-id')).toBe('req-7f3a');
      const warning = await waitFor(() =>
        lines.find((l) => String(l.msg).includes('cancel signal not sent')),
      );
      expect(warning.requestId).toBe('req-7f3a');
      const generated = await fetch(`${server.url}/healthz`);
      expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await db.close();
      await server.close();
      await env.cleanup();
    }
  });
});

describe('CORS', () => {
  it('allows the listed origins, with Authorization on preflight, on REST and on event streams; not others', async () => {
    const env = createTestEnv({ AUTH_MODE: 'required', CORS_ORIGINS: 'https://app.example.com' });
    const parsed = loadEnv(env.vars);
    const server = await startServer(parsed, createLogger(parsed, 'test'));
    const db = createDb(env.databaseUrl, { max: 1 });
    try {
      const preflight = await fetch(`${server.url}/run-task`, {
        method: 'OPTIONS',
        headers: {
          origin: 'https://app.example.com',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
      const other = await fetch(`${server.url}/run-task`, {
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();

      const { key } = await new ApiKeyStore(db.db).create({
        tenantId: 't',
        name: 'cors',
        scopes: ['tasks:write', 'tasks:read'],
      });
      const headers = {
        authorization: `Bearer ${key}`,
        origin: 'https://app.example.com',
        'content-type': 'application/json',
      };
      const run = await fetch(`${server.url}/run-task`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 1 } }),
      });
      expect(run.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      const { task_uuid } = (await run.json()) as { task_uuid: string };
      const controller = new AbortController();
      const stream = await fetch(`${server.url}/tasks/${task_uuid}/events`, {
        headers,
        signal: controller.signal,
      });
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
      expect(stream.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      controller.abort();
      const sub = await fetch(
        `${server.url}/trpc/onTaskUpdate?input=${encodeURIComponent(JSON.stringify({ id: task_uuid }))}`,
        { headers, signal: AbortSignal.timeout(3000) },
      );
      expect(sub.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      await sub.body?.cancel();
    } finally {
      await server.close();
      await db.close();
      await env.cleanup();
    }
  });
});
