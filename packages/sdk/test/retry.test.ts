import { waitFor } from '@tasker/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
  type TaskerClient,
  TaskerNotFoundError,
  TaskerUnavailableError,
  TaskerValidationError,
} from '../src/index.ts';
import { type Fault, type HttpProxy, startHttpProxy } from './http-proxy.ts';
import { type LiveStack, startLiveStack } from './stack.ts';

let stack: LiveStack;
let proxy: HttpProxy;
/** Through the proxy, with the default retries (3 attempts, 200 ms → 1 s). */
let tasker: TaskerClient;
/** Straight to the server, to set up and check. */
let direct: TaskerClient;

beforeAll(async () => {
  stack = await startLiveStack();
  proxy = await startHttpProxy(stack.url);
  tasker = createTaskerClient({ url: proxy.url });
  direct = createTaskerClient({ url: stack.url, retry: false });
});
afterEach(() => {
  proxy.clearFaults();
});
afterAll(async () => {
  await proxy?.close();
  await stack?.close();
});

/** How many requests `procedure` made while `action` ran, and how `action` ended. */
async function requests<T>(procedure: string, action: () => Promise<T>) {
  const before = proxy.count(procedure);
  const outcome = await action().then(
    (value) => ({ value, error: undefined }),
    (error: unknown) => ({ value: undefined, error }),
  );
  return { ...outcome, requests: proxy.count(procedure) - before };
}

describe('retries of idempotent calls (a proxy in front of a live server injects the failures)', () => {
  it('a query succeeds after transient failures: the server’s 503, a proxy’s 502/503/504, a dropped connection', async () => {
    const sum = await direct.run('sum_two_numbers', { a: 1, b: 1 });
    const faults: Fault[] = ['trpc-503', 502, 503, 504, 'reset'];
    for (const fault of faults) {
      proxy.fail('getTask', fault, 2);
      const { value, error, requests: made } = await requests('getTask', () => tasker.get(sum.id));
      expect(error, String(fault)).toBeUndefined();
      expect(value?.id).toBe(sum.id);
      expect(made, String(fault)).toBe(3);
    }
  });

  it('every query is retried: list(), and getTaskOutput, getQueue, listTaskTypes through tasker.trpc', async () => {
    const sum = await direct.run('sum_two_numbers', { a: 1, b: 2 });
    const calls: [string, () => Promise<unknown>][] = [
      ['listTasks', () => tasker.list({ limit: 1 })],
      ['getTaskOutput', () => tasker.trpc.getTaskOutput.query({ task_uuid: sum.id })],
      ['getQueue', () => tasker.trpc.getQueue.query({})],
      ['listTaskTypes', () => tasker.trpc.listTaskTypes.query({})],
    ];
    for (const [procedure, action] of calls) {
      proxy.fail(procedure, 503);
      const { error, requests: made } = await requests(procedure, action);
      expect(error, procedure).toBeUndefined();
      expect(made, procedure).toBe(2);
    }
  });

  it('gives up after 3 attempts, backing off in between, with TaskerUnavailableError', async () => {
    const sum = await direct.run('sum_two_numbers', { a: 2, b: 2 });
    proxy.fail('getTask', 503, 10);
    const started = performance.now();
    const { error, requests: made } = await requests('getTask', () => tasker.get(sum.id));
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(TaskerUnavailableError);
    expect(error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: expect.stringContaining('503') });
    expect(made).toBe(3);
    // 200 ms then 400 ms, each less up to a quarter at random.
    expect(elapsed).toBeGreaterThanOrEqual(0.75 * (200 + 400) - 10);
    expect(elapsed).toBeLessThan(3000);
  });

  it('run() with an idempotencyKey is retried, and the retry gets the one task back', async () => {
    const key = `retry-${crypto.randomUUID()}`;
    // The server creates the task, but its answer is lost on the way back.
    proxy.fail('runTask', 'lost-answer');
    const {
      value: sum,
      error,
      requests: made,
    } = await requests('runTask', () =>
      tasker.run('sum_two_numbers', { a: 4, b: 5 }, { idempotencyKey: key }),
    );
    expect(error).toBeUndefined();
    expect(made).toBe(2);
    expect(await sum?.result()).toBe(9);
    const again = await direct.trpc.runTask.mutate({
      task_name: 'sum_two_numbers',
      task_parameters: { a: 4, b: 5 },
      idempotency_key: key,
    });
    expect(again).toEqual({ task_uuid: sum?.id, replayed: true });

    proxy.fail('runTask', 502, 2);
    const second = await requests('runTask', () =>
      tasker.run('sum_two_numbers', { a: 1, b: 1 }, { idempotencyKey: `${key}-2` }),
    );
    expect(second.error).toBeUndefined();
    expect(second.requests).toBe(3);
  });

  it('never retries cancel(), retry(), the queue mutations, nor run() without an idempotencyKey', async () => {
    const delayed = await direct.run('sum_two_numbers', { a: 3, b: 3 }, { delayMs: 60_000 });
    const handle = tasker.task<'sum_two_numbers'>(delayed.id);

    // The cancel reaches the server, its answer is lost: not repeated (a repeat would get a 409).
    proxy.fail('cancelTask', 'lost-answer');
    const cancel = await requests('cancelTask', () => handle.cancel());
    expect(cancel.error).toBeInstanceOf(TaskerUnavailableError);
    expect(cancel.requests).toBe(1);
    expect((await direct.get(delayed.id)).status).toBe('CANCELLED');

    proxy.fail('retryTask', 503);
    const retry = await requests('retryTask', () => handle.retry());
    expect(retry.error).toBeInstanceOf(TaskerUnavailableError);
    expect(retry.requests).toBe(1);
    expect((await direct.get(delayed.id)).status).toBe('CANCELLED');

    proxy.fail('runTask', 'reset');
    const run = await requests('runTask', () => tasker.run('sum_two_numbers', { a: 6, b: 6 }));
    expect(run.error).toBeInstanceOf(TaskerUnavailableError);
    expect(run.requests).toBe(1);

    proxy.fail('resumeQueue', 'trpc-503');
    const resume = await requests('resumeQueue', () => tasker.trpc.resumeQueue.mutate({}));
    expect(resume.error).toBeInstanceOf(Error);
    expect(resume.requests).toBe(1);
  });

  it('does not retry what is not transient: NOT_FOUND, BAD_REQUEST', async () => {
    const missing = await requests('getTask', () => tasker.get(crypto.randomUUID()));
    expect(missing.error).toBeInstanceOf(TaskerNotFoundError);
    expect(missing.requests).toBe(1);

    const invalid = await requests('runTask', () =>
      tasker.run('sum_two_numbers', { a: 'x', b: 1 } as never, { idempotencyKey: crypto.randomUUID() }),
    );
    expect(invalid.error).toBeInstanceOf(TaskerValidationError);
    expect(invalid.requests).toBe(1);

    const stream = await requests('onTaskUpdate', async () => {
      for await (const _ of tasker.task(crypto.randomUUID()).updates()) {
        // never reached: the task does not exist
      }
    });
    expect(stream.error).toBeInstanceOf(TaskerNotFoundError);
    expect(stream.requests).toBe(1);
  });

  it('is configurable: retry: false never retries; { attempts: 5, delayMs: 10 } tries 5 times', async () => {
    const sum = await direct.run('sum_two_numbers', { a: 5, b: 5 });
    const never = createTaskerClient({ url: proxy.url, retry: false });
    proxy.fail('getTask', 503);
    const once = await requests('getTask', () => never.get(sum.id));
    expect(once.error).toBeInstanceOf(TaskerUnavailableError);
    expect(once.requests).toBe(1);

    const patient = createTaskerClient({ url: proxy.url, retry: { attempts: 5, delayMs: 10 } });
    proxy.fail('getTask', 'reset', 4);
    const fifth = await requests('getTask', () => patient.get(sum.id));
    expect(fifth.error).toBeUndefined();
    expect(fifth.requests).toBe(5);
  });
});

describe('subscriptions: EventSource reconnects by itself, the retry covers what it cannot', () => {
  it('updates() gets over 503s on connecting, then a dropped stream followed by 502s, resuming from the last event', async () => {
    const chat = await tasker.run('query_chatgpt', { prompt: 'cut me off' });
    const before = proxy.count('onTaskUpdate');
    // A non-200 answer is fatal to an EventSource: the retry subscribes again (3 attempts).
    proxy.fail('onTaskUpdate', 503, 2);
    const versions: number[] = [];
    const statuses: string[] = [];
    for await (const update of chat.updates()) {
      if (versions.length === 0) {
        // The stream drops; EventSource reconnects with its last event id and meets a 502, twice:
        // a new outage, which gets 3 attempts of its own.
        proxy.fail('onTaskUpdate', 502, 2);
        proxy.cutStreams();
      }
      versions.push(update.version);
      statuses.push(update.status);
    }
    expect(statuses.at(-1)).toBe('COMPLETED');
    expect(statuses.indexOf('COMPLETED')).toBe(statuses.length - 1);
    // Never backwards, never twice.
    for (let i = 1; i < versions.length; i++) expect(versions[i]).toBeGreaterThan(versions[i - 1] ?? 0);
    // 503, 503, stream (cut); EventSource's reconnect: 502; retried from the last id: 502, stream.
    expect(proxy.count('onTaskUpdate') - before).toBe(6);
    // Each one after the first event asks to resume after it: EventSource with its Last-Event-ID
    // header, the retry with `lastEventId` in the input (the tracked id, the task's version).
    const [first, second, third, reconnect, ...retries] = proxy.requests('onTaskUpdate').slice(-6);
    for (const plain of [first, second, third])
      expect(plain).toEqual({ input: { id: chat.id }, lastEventIdHeader: undefined });
    // The last event id the client had when the stream was cut (it may have read ahead of the loop).
    const resumeAfter = reconnect?.lastEventIdHeader;
    expect(versions.map(String)).toContain(resumeAfter);
    for (const retry of retries) expect(retry.input).toEqual({ id: chat.id, lastEventId: resumeAfter });
  });

  it('with retry: false, an HTTP error that ends the event stream ends updates() with TaskerUnavailableError', async () => {
    const never = createTaskerClient({ url: proxy.url, retry: false });
    const sum = await direct.run('sum_two_numbers', { a: 7, b: 7 });
    proxy.fail('onTaskUpdate', 503);
    const { error, requests: made } = await requests('onTaskUpdate', async () => {
      for await (const _ of never.task(sum.id).updates()) {
        // the first connection fails
      }
    });
    expect(error).toBeInstanceOf(TaskerUnavailableError);
    expect(made).toBe(1);
  });

  it('updates({ signal }) stops early and closes the stream', async () => {
    const delayed = await direct.run('sum_two_numbers', { a: 8, b: 8 }, { delayMs: 60_000 });
    const controller = new AbortController();
    const statuses: string[] = [];
    for await (const update of tasker.task(delayed.id).updates({ signal: controller.signal })) {
      statuses.push(update.status);
      expect(proxy.openStreams()).toBe(1);
      setTimeout(() => controller.abort(), 100);
    }
    expect(statuses).toEqual(['PENDING']);
    await waitFor(() => proxy.openStreams() === 0, { timeoutMs: 5000, what: 'the stream to close' });
    await direct.task(delayed.id).cancel();
  });
});
