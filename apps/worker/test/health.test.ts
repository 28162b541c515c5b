import { createServer } from 'node:net';
import {
  type AppProcess,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startFakeOpenAI,
  waitFor,
} from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

let harness: Harness | undefined;
let fake: FakeOpenAI | undefined;
const workers: AppProcess[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  await fake?.close();
  fake = undefined;
});

async function probe(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: unknown } | 'refused'> {
  try {
    const res = await fetch(url, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  } catch {
    return 'refused';
  }
}

describe('the worker on METRICS_PORT', () => {
  it('answers GET /healthz 200 while it runs, 503 "stopping" while it finishes a task after SIGTERM, and nothing after', async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 400 });
    harness = await Harness.start({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
    const port = await freePort();
    const worker = await spawnApp('worker', { ...harness.env.vars, METRICS_PORT: String(port) });
    workers.push(worker);
    const url = `http://127.0.0.1:${port}`;
    expect(worker.output()).toContain(
      `"url":"${url}","msg":"health listener ready: GET /healthz, GET /metrics"`,
    );

    // "worker ready" is logged a moment before the state turns ok.
    await waitFor(async () => {
      const answer = await probe(`${url}/healthz`);
      return answer !== 'refused' && answer.status === 200;
    });
    expect(await probe(`${url}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await probe(`${url}/healthz?verbose=1`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect((await fetch(`${url}/healthz`, { method: 'HEAD' })).status).toBe(200);
    expect(await probe(`${url}/nothing`)).toEqual({
      status: 404,
      body: { error: 'Not found', code: 'NOT_FOUND', status: 404 },
    });
    // Prometheus' text format, open without METRICS_TOKEN (metrics.test.ts in apps/server tests the rest).
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await metrics.text()).toMatch(/^# HELP tasker_tasks_completed_total /m);
    const post = await fetch(`${url}/healthz`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);

    const id = await harness.submit('query_chatgpt', { prompt: 'one two three four' }, 1);
    await waitFor(async () => (await harness?.store.get(id))?.status === 'RUNNING');
    const exited = worker.stop('SIGTERM');
    await waitFor(async () => {
      const answer = await probe(`${url}/healthz`);
      return answer !== 'refused' && answer.status === 503;
    });
    expect(await probe(`${url}/healthz`)).toEqual({ status: 503, body: { status: 'stopping' } });
    expect(await exited).toBe(0);
    expect((await harness.store.get(id))?.status).toBe('COMPLETED');
    expect(await probe(`${url}/healthz`)).toBe('refused');
  });

  it.each([
    ['unset', {}],
    ['0', { METRICS_PORT: '0' }],
  ])('listens on nothing when METRICS_PORT is %s', async (_, vars: Record<string, string>) => {
    harness = await Harness.start();
    const worker = await spawnApp('worker', { ...harness.env.vars, ...vars });
    workers.push(worker);
    expect(worker.output()).toContain('worker ready');
    expect(worker.output()).not.toContain('health listener');
  });

  it('closes /metrics with AUTH_MODE=required and no METRICS_TOKEN, and says at start how to open it', async () => {
    harness = await Harness.start();
    const port = await freePort();
    const worker = await spawnApp('worker', {
      ...harness.env.vars,
      AUTH_MODE: 'required',
      METRICS_TOKEN: '',
      METRICS_PORT: String(port),
    });
    workers.push(worker);
    const output = worker.output();
    expect(output.match(/METRICS_TOKEN is unset/g)).toHaveLength(1);
    const res = await probe(`http://127.0.0.1:${port}/metrics`);
    expect(res).toEqual({
      status: 401,
      body: { error: expect.stringContaining('Set METRICS_TOKEN'), code: 'UNAUTHORIZED', status: 401 },
    });
  });

  it('a METRICS_PORT already taken stops the worker at start, in one line naming the variable', async () => {
    harness = await Harness.start();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const start = spawnApp('worker', { ...harness.env.vars, METRICS_PORT: String(port) });
      const error: unknown = await start.catch((e: unknown) => e);
      const message = error instanceof Error ? error.message : String(error);
      expect(message).toMatch(/^worker exited with 1 before it was ready:\n/);
      const output = message.slice(message.indexOf('\n') + 1).trim();
      expect(output).toBe(`METRICS_PORT=${port}: cannot listen on 127.0.0.1:${port} (EADDRINUSE)`);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
