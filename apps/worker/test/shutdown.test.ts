import { type AppProcess, type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

let harness: Harness | undefined;
const fakes: FakeOpenAI[] = [];
const workers: AppProcess[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function openai(options: Parameters<typeof startFakeOpenAI>[0]) {
  const fake = await startFakeOpenAI(options);
  fakes.push(fake);
  return { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL, fake };
}

describe('graceful shutdown', () => {
  it('SIGTERM lets a running task finish, then exits 0', async () => {
    const { fake, ...vars } = await openai({ chunkDelayMs: 600 });
    harness = await Harness.start(vars);
    const worker = await spawnApp('worker', harness.env.vars);
    workers.push(worker);
    const id = await harness.submit('query_chatgpt', { prompt: 'slow' }, 3);
    await waitFor(async () => (await harness?.store.get(id))?.status === 'RUNNING');
    expect(await worker.stop('SIGTERM')).toBe(0);
    const row = await harness.store.get(id);
    expect(row?.status).toBe('COMPLETED');
    expect(row?.output).toBe('echo: slow');
    expect(fake.requests).toHaveLength(1);
  });

  it('a task still running after SHUTDOWN_TIMEOUT_MS is aborted and handed back, uncounted, to the next worker', async () => {
    const slow = await openai({ chunkDelayMs: 30_000 });
    harness = await Harness.start({
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: slow.OPENAI_BASE_URL,
      SHUTDOWN_TIMEOUT_MS: '300',
    });
    const worker = await spawnApp('worker', harness.env.vars);
    workers.push(worker);
    const id = await harness.submit('query_chatgpt', { prompt: 'stuck' }, 3);
    await waitFor(async () => (await harness?.store.get(id))?.status === 'RUNNING');
    const stopping = performance.now();
    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(performance.now() - stopping).toBeLessThan(5000);
    const released = await harness.store.get(id);
    expect(released).toMatchObject({ status: 'PENDING', attempts: 0, attemptErrors: [] });
    await waitFor(() => slow.fake.requests[0]?.aborted === true, {
      what: 'the OpenAI request to be aborted',
    });

    const quick = await openai({});
    workers.push(await spawnApp('worker', { ...harness.env.vars, OPENAI_BASE_URL: quick.OPENAI_BASE_URL }));
    await waitFor(async () => (await harness?.store.get(id))?.status === 'COMPLETED', { timeoutMs: 20_000 });
    expect((await harness.store.get(id))?.attempts).toBe(1);
  });
});

describe('retries', () => {
  it('a failing handler is retried with backoff and ends FAILED with every attempt recorded', async () => {
    const { fake, ...vars } = await openai({ failWith: 500 });
    harness = await Harness.start(vars);
    workers.push(await spawnApp('worker', harness.env.vars));
    const id = await harness.submit('query_chatgpt', { prompt: 'x' }, 3);
    await waitFor(async () => (await harness?.store.get(id))?.status === 'FAILED', { timeoutMs: 30_000 });
    const row = await harness.store.get(id);
    expect(row?.attempts).toBe(3);
    expect(row?.attemptErrors.map((e) => e.attempt)).toEqual([1, 2, 3]);
    expect(row?.error).toMatchObject({ code: 'HANDLER_ERROR', attempt: 3 });
    expect(fake.requests).toHaveLength(3);
    // The event follows the commit: wait for it rather than race it.
    await waitFor(() => harness?.events.some((e) => e.id === id && e.status === 'FAILED'));
    const statuses = harness.events.filter((e) => e.id === id).map((e) => e.status);
    expect(statuses).toEqual(['PENDING', 'RUNNING', 'PENDING', 'RUNNING', 'PENDING', 'RUNNING', 'FAILED']);
  });

  it('an error another attempt cannot fix (401) fails at once', async () => {
    const { fake, ...vars } = await openai({ failWith: 401 });
    harness = await Harness.start(vars);
    workers.push(await spawnApp('worker', harness.env.vars));
    const id = await harness.submit('query_chatgpt', { prompt: 'x' }, 3);
    await waitFor(async () => (await harness?.store.get(id))?.status === 'FAILED');
    const row = await harness.store.get(id);
    expect(row?.attempts).toBe(1);
    expect(row?.error?.message).toMatch(/401/);
    expect(fake.requests).toHaveLength(1);
  });
});
