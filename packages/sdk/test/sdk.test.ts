import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
  type TaskActivity,
  type TaskerClient,
  TaskerNotFoundError,
  TaskerUnavailableError,
  TaskerValidationError,
  TaskFailedError,
  type TaskUpdate,
} from '../src/index.ts';
import { type LiveStack, startLiveStack } from './stack.ts';

let stack: LiveStack;
let tasker: TaskerClient;

beforeAll(async () => {
  stack = await startLiveStack();
  tasker = createTaskerClient({ url: stack.url });
});
afterAll(async () => {
  await stack?.close();
});

describe('createTaskerClient against a live server', () => {
  it('run → result(), typed by the task name', async () => {
    const sum = await tasker.run('sum_two_numbers', { a: 1, b: 2 });
    const value: number = await sum.result();
    expect(value).toBe(3);
    expect(await (await tasker.run('find_longest_consecutive_letters', { string: '😀😀😀' })).result()).toBe(
      3,
    );
    expect(await (await tasker.run('query_chatgpt', { prompt: 'hi' })).result()).toBe(
      'one two three four five six seven eight',
    );
  });

  it('updates() yields the current state, the growing reply, and ends after COMPLETED', async () => {
    const chat = await tasker.run('query_chatgpt', { prompt: 'stream please' });
    const updates: TaskUpdate<'query_chatgpt'>[] = [];
    for await (const update of chat.updates()) updates.push(update);
    expect(updates.at(-1)?.status).toBe('COMPLETED');
    expect(updates.at(-1)?.output).toBe('one two three four five six seven eight');
    const partials = updates.map((u) => (u.progress as { partial?: string } | null)?.partial).filter(Boolean);
    expect(partials.length).toBeGreaterThanOrEqual(2);
    const versions = updates.map((u) => u.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it("activity() gives a durable task's steps between its states: the approval's wait, then its end", async () => {
    const summary = await tasker.run('summarize_documents', {
      documents: ['a', 'b'],
      require_approval: true,
    });
    const seen: TaskActivity<'summarize_documents'>[] = [];
    for await (const event of summary.activity()) {
      seen.push(event);
      // Waiting for its approval: the token is in what it waits for; completing it resumes the task.
      if (event.type === 'state' && event.task.waitingFor?.kind === 'token' && event.task.waitingFor.token)
        await tasker.tokens.complete(event.task.waitingFor.token, { approved: true });
    }
    const last = seen.at(-1);
    expect(last?.type === 'state' && last.task.output?.summaries).toHaveLength(2);
    const steps = seen.flatMap((e) => (e.type === 'step' ? [`${e.step.id} ${e.step.status}`] : []));
    expect(steps).toEqual(
      expect.arrayContaining(['$children:0 completed', '$token-wait:2 waiting', '$token-wait:2 completed']),
    );
    expect(seen.every((e) => e.type === 'state' || e.step.taskId === summary.id)).toBe(true);
  });

  it('get(id) returns the full record', async () => {
    const task = await tasker.run('sum_two_numbers', { a: 20, b: 22 });
    await task.result();
    const record = await tasker.get<'sum_two_numbers'>(task.id);
    expect(record).toMatchObject({
      id: task.id,
      name: 'sum_two_numbers',
      status: 'COMPLETED',
      input: { a: 20, b: 22 },
      output: 42,
    });
    expect((await task.get()).output).toBe(42);
  });

  it('throws its own error classes', async () => {
    const invalid = tasker.run('sum_two_numbers', { a: 'one', b: 2 } as never);
    await expect(invalid).rejects.toBeInstanceOf(TaskerValidationError);
    await expect(invalid).rejects.toMatchObject({
      issues: expect.arrayContaining([
        expect.objectContaining({ path: 'task_parameters.a', expected: 'number' }),
      ]),
    });
    await expect(tasker.get(crypto.randomUUID())).rejects.toBeInstanceOf(TaskerNotFoundError);
    const nowhere = createTaskerClient({ url: 'http://127.0.0.1:1' });
    await expect(nowhere.get(crypto.randomUUID())).rejects.toBeInstanceOf(TaskerUnavailableError);
  });

  it('run() takes camelCase options and maps them to the router', async () => {
    const runAt = new Date(Date.now() + 60_000);
    const key = `camel-${crypto.randomUUID()}`;
    const later = await tasker.run(
      'sum_two_numbers',
      { a: 1, b: 1 },
      { priority: 7, runAt, maxAttempts: 2, timeoutMs: 5_000, idempotencyKey: key },
    );
    expect(await later.get()).toMatchObject({
      status: 'PENDING',
      priority: 7,
      maxAttempts: 2,
      runAfter: runAt.toISOString(),
    });
    // The same key: the same task.
    expect((await tasker.run('sum_two_numbers', { a: 1, b: 1 }, { idempotencyKey: key })).id).toBe(later.id);
    const delayed = await tasker.run(
      'sum_two_numbers',
      { a: 2, b: 2 },
      { delayMs: 60_000, runAt: undefined },
    );
    const runAfter = Date.parse((await delayed.get()).runAfter ?? '');
    expect(runAfter).toBeGreaterThan(Date.now() + 50_000);
    const asString = await tasker.run('sum_two_numbers', { a: 3, b: 3 }, { runAt: runAt.toISOString() });
    expect((await asString.get()).runAfter).toBe(runAt.toISOString());
    await Promise.all([later.cancel(), delayed.cancel(), asString.cancel()]);
  });

  it('list() takes camelCase filters and pages with nextCursor', async () => {
    const since = new Date(Date.now() - 1);
    const done = await Promise.all(
      [1, 2, 3].map((a) => tasker.run('find_longest_consecutive_letters', { string: 'x'.repeat(a) })),
    );
    await Promise.all(done.map((t) => t.result()));
    const options = {
      status: ['COMPLETED'],
      name: 'find_longest_consecutive_letters',
      createdAfter: since,
      createdBefore: new Date(Date.now() + 60_000).toISOString(),
      limit: 2,
    } as const;
    const first = await tasker.list(options);
    expect(first.tasks).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await tasker.list({ ...options, cursor: first.nextCursor ?? undefined });
    expect(second.tasks).toHaveLength(1);
    expect(second.nextCursor).toBeNull();
    expect(new Set([...first.tasks, ...second.tasks].map((t) => t.id))).toEqual(
      new Set(done.map((t) => t.id)),
    );
    expect((await tasker.list({ status: 'RUNNING', createdAfter: since })).tasks).toEqual([]);
  });

  it('list() searches by payload: inputContains and outputContains, typed by the task type', async () => {
    const marker = Date.now();
    const [hit, other] = await Promise.all([
      tasker.run('sum_two_numbers', { a: marker, b: 1 }),
      tasker.run('sum_two_numbers', { a: marker, b: 2 }),
    ]);
    await Promise.all([hit.result(), other.result()]);
    const both = await tasker.list({ name: 'sum_two_numbers', inputContains: { a: marker }, limit: 1 });
    expect(both.tasks).toHaveLength(1);
    const rest = await tasker.list({
      name: 'sum_two_numbers',
      inputContains: { a: marker },
      cursor: both.nextCursor ?? undefined,
    });
    expect(new Set([...both.tasks, ...rest.tasks].map((t) => t.id))).toEqual(new Set([hit.id, other.id]));
    const byOutput = await tasker.list({
      name: 'sum_two_numbers',
      inputContains: { a: marker },
      outputContains: marker + 1,
      status: 'COMPLETED',
    });
    expect(byOutput.tasks.map((t) => t.id)).toEqual([hit.id]);
    expect((await tasker.list({ inputContains: { a: marker, b: 3 } })).tasks).toEqual([]);
    // Nothing to look for: refused by the server, the field named as the caller wrote it.
    await expect(tasker.list({ inputContains: {} })).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'inputContains' })],
    });
  });

  it("refuses 0.1's snake_case options, and names the fields of a refused option as the caller did", async () => {
    const legacy = tasker.run('sum_two_numbers', { a: 1, b: 2 }, { delay_ms: 1000 } as never);
    await expect(legacy).rejects.toBeInstanceOf(TaskerValidationError);
    await expect(legacy).rejects.toMatchObject({
      issues: [{ path: 'delay_ms', message: expect.stringContaining('"delayMs"') }],
    });
    await expect(tasker.list({ next_cursor: 'x' } as never)).rejects.toBeInstanceOf(TaskerValidationError);
    await expect(tasker.run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: -5 })).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'delayMs' })],
    });
    await expect(tasker.list({ createdAfter: 'yesterday' })).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'createdAfter' })],
    });
    await expect(tasker.list({ createdAfter: new Date('nonsense') })).rejects.toBeInstanceOf(
      TaskerValidationError,
    );
  });

  it('updates({ signal }) stops the loop early, without an error', async () => {
    const delayed = await tasker.run('sum_two_numbers', { a: 4, b: 4 }, { delayMs: 60_000 });
    const controller = new AbortController();
    const statuses: string[] = [];
    for await (const update of delayed.updates({ signal: controller.signal })) {
      statuses.push(update.status);
      controller.abort();
    }
    expect(statuses).toEqual(['PENDING']);
    // An already aborted signal: no update at all.
    const none: unknown[] = [];
    for await (const update of delayed.updates({ signal: controller.signal })) none.push(update);
    expect(none).toEqual([]);
    await delayed.cancel();
  });

  it("result() rejects with TaskFailedError carrying the task's error", async () => {
    await stack.fake.close();
    // The fake model is gone: every attempt fails, and the task ends FAILED after its retries.
    const chat = await tasker.run('query_chatgpt', { prompt: 'no model' });
    const failure = await chat.result().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TaskFailedError);
    expect(failure).toMatchObject({
      status: 'FAILED',
      taskId: chat.id,
      taskError: { code: 'HANDLER_ERROR' },
    });
  });
});
