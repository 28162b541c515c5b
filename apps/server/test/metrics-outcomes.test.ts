/**
 * The task counters at the edges of a task's life: a task that fails after a retry is counted
 * FAILED once (its attempts show in the run-duration histogram, by outcome); a queued task
 * cancelled by the server is counted by the server, a running one by the worker that ends it.
 */
import {
  type AppProcess,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startFakeOpenAI,
  waitFor,
} from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';
import { countOf, type Scrape, sampleValue, scrape } from './prometheus.ts';
import { metricsCurls, runReadmeLine } from './readme-metrics.ts';

let stack: Stack;
let worker: AppProcess;
let workerUrl: string;
let fake: FakeOpenAI;
let release: () => void = () => {};
const held = new Promise<void>((resolve) => {
  release = resolve;
});

beforeAll(async () => {
  // Every OpenAI call hangs until the test ends: attempts with a short timeout time out, others run on.
  fake = await startFakeOpenAI({ hold: () => held });
  stack = await startStack({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL }, { worker: false });
  const port = await freePort();
  worker = await spawnApp('worker', { ...stack.env.vars, METRICS_PORT: String(port) });
  workerUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  release();
  await worker?.stop();
  await stack?.close();
  await fake?.close();
});

async function post(path: string, body?: unknown): Promise<{ id: string; status: string }> {
  const res = await fetch(`${stack.url}${path}`, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status).toBeLessThan(300);
  return (await res.json()) as { id: string; status: string };
}

const statusOf = async (id: string) =>
  ((await (await fetch(`${stack.url}/tasks/${id}`)).json()) as { status: string }).status;

const both = async () => ({ server: await scrape(stack.url), worker: await scrape(workerUrl) });

describe('task counters', () => {
  it('count a task that failed after a retry once, and each of its attempts in the run-duration histogram', async () => {
    const before = await both();
    const task = await post('/tasks', {
      name: 'query_chatgpt',
      input: { prompt: 'slow' },
      max_attempts: 2,
      timeout_ms: 100,
    });
    await waitFor(async () => (await statusOf(task.id)) === 'FAILED', { timeoutMs: 30_000 });
    const moved = (after: Scrape, from: Scrape, name: string, labels = {}) =>
      sampleValue(after, name, labels) - sampleValue(from, name, labels);
    const after = await waitFor(async () => {
      const now = await both();
      return moved(now.worker, before.worker, 'tasker_tasks_failed_total') >= 1 ? now : undefined;
    });
    expect(
      moved(after.worker, before.worker, 'tasker_tasks_failed_total', { task_type: 'query_chatgpt' }),
    ).toBe(1);
    const attempts = (outcome: string) =>
      countOf(after.worker, 'tasker_task_run_duration_seconds', { outcome }) -
      countOf(before.worker, 'tasker_task_run_duration_seconds', { outcome });
    expect([attempts('retrying'), attempts('failed'), attempts('completed')]).toEqual([1, 1, 0]);
    expect(
      countOf(after.worker, 'tasker_task_queue_wait_seconds') -
        countOf(before.worker, 'tasker_task_queue_wait_seconds'),
    ).toBe(1);
  });

  it('count a queued task cancelled on the server, and a running one cancelled on the worker', async () => {
    const before = await both();
    const queued = await post('/tasks', {
      name: 'sum_two_numbers',
      input: { a: 1, b: 1 },
      delay_ms: 600_000,
    });
    const running = await post('/tasks', { name: 'query_chatgpt', input: { prompt: 'hangs' } });
    await waitFor(async () => (await statusOf(running.id)) === 'RUNNING');
    expect((await post(`/tasks/${queued.id}/cancel`)).status).toBe('CANCELLED');
    await post(`/tasks/${running.id}/cancel`);
    await waitFor(async () => (await statusOf(running.id)) === 'CANCELLED');
    const moved = (where: 'server' | 'worker', now: { server: Scrape; worker: Scrape }, labels = {}) =>
      sampleValue(now[where], 'tasker_tasks_cancelled_total', labels) -
      sampleValue(before[where], 'tasker_tasks_cancelled_total', labels);
    const after = await waitFor(async () => {
      const now = await both();
      return moved('worker', now) >= 1 ? now : undefined;
    });
    expect(moved('server', after, { task_type: 'sum_two_numbers' })).toBe(1);
    expect(moved('server', after)).toBe(1);
    expect(moved('worker', after, { task_type: 'query_chatgpt' })).toBe(1);
    expect(moved('worker', after)).toBe(1);
    expect(
      countOf(after.worker, 'tasker_task_run_duration_seconds', { outcome: 'cancelled' }) -
        countOf(before.worker, 'tasker_task_run_duration_seconds', { outcome: 'cancelled' }),
    ).toBe(1);
  });
});

describe("the README's metrics curl line, run as written (METRICS_TOKEN unset)", () => {
  it('prints the created-tasks counter by task type', async () => {
    const line = metricsCurls.find((l) => !l.includes('Authorization'));
    expect(line).toBeTruthy();
    const out = await runReadmeLine(line ?? '', stack.url);
    expect(out).toMatch(/^tasker_tasks_created_total\{task_type="sum_two_numbers"\} [1-9]\d*$/m);
    expect(out).toMatch(/^tasker_tasks_created_total\{task_type="query_chatgpt"\} [1-9]\d*$/m);
  });
});
