import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
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
