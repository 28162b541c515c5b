/**
 * The run options of issue 18 through the SDK, camelCase, against a live server and worker:
 * `ttlMs`, `concurrencyKey`, `singletonKey` and `debounce: { key, delayMs }`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskerClient, type TaskerClient, TaskerValidationError } from '../src/index.ts';
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

const unique = (what: string) => `${what}-${crypto.randomUUID()}`;

describe('run() with the keys and the ttl', () => {
  it('maps ttlMs and concurrencyKey, and shows the key on the record and the list', async () => {
    const key = unique('customer');
    const later = await tasker.run(
      'sum_two_numbers',
      { a: 1, b: 2 },
      { delayMs: 60_000, ttlMs: 5_000, concurrencyKey: key },
    );
    const task = await later.get();
    expect(task).toMatchObject({ concurrencyKey: key, ttlMs: 5_000, singletonKey: null, debounceKey: null });
    expect(Date.parse(task.expiresAt ?? '') - Date.parse(task.runAfter ?? '')).toBe(5_000);
    const { tasks } = await tasker.list({ name: 'sum_two_numbers', status: 'PENDING', limit: 500 });
    expect(tasks.find((t) => t.id === later.id)?.concurrencyKey).toBe(key);
    // Without one, the tenant's (AUTH_MODE=disabled: default).
    const plain = await tasker.run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: 60_000 });
    expect((await plain.get()).concurrencyKey).toBe('default');
    await Promise.all([later.cancel(), plain.cancel()]);
  });

  it('singletonKey: a second run while the first is unfinished gets the first, deduplicated', async () => {
    const key = unique('nightly');
    const first = await tasker.run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: 60_000, singletonKey: key });
    expect(first.deduplicated).toBe(false);
    const second = await tasker.run('sum_two_numbers', { a: 5, b: 5 }, { singletonKey: key });
    expect(second).toMatchObject({ id: first.id, deduplicated: true });
    expect((await second.get()).input).toEqual({ a: 1, b: 2 });
    await first.cancel();
    const third = await tasker.run('sum_two_numbers', { a: 5, b: 5 }, { singletonKey: key });
    expect(third.deduplicated).toBe(false);
    expect(await third.result()).toBe(10);
  });

  it('debounce: runs collapse into one task with the last parameters, run delayMs after the last', async () => {
    const key = unique('reindex');
    const handles = [];
    for (const a of [1, 2, 3])
      handles.push(await tasker.run('sum_two_numbers', { a, b: 0 }, { debounce: { key, delayMs: 400 } }));
    expect(new Set(handles.map((h) => h.id)).size).toBe(1);
    expect(handles.map((h) => h.deduplicated)).toEqual([false, true, true]);
    const submitted = Date.now();
    expect(await handles[0]?.result()).toBe(3);
    const task = await handles[0]?.get();
    expect(task?.debounceKey).toBe(key);
    expect(Date.parse(task?.startedAt ?? '')).toBeGreaterThanOrEqual(submitted + 300);
  });

  it('names a refused debounce field as the caller wrote it', async () => {
    const refused = tasker.run('sum_two_numbers', { a: 1, b: 2 }, { debounce: { key: 'k', delayMs: -1 } });
    await expect(refused).rejects.toBeInstanceOf(TaskerValidationError);
    await expect(refused).rejects.toMatchObject({
      issues: [expect.objectContaining({ path: 'debounce.delayMs' })],
    });
    const snake = tasker.run('sum_two_numbers', { a: 1, b: 2 }, {
      debounce: { key: 'k', delay_ms: 5 },
    } as never);
    await expect(snake).rejects.toMatchObject({
      issues: [{ path: 'debounce.delay_ms', message: expect.stringContaining('"delayMs"') }],
    });
    await expect(
      tasker.run('sum_two_numbers', { a: 1, b: 2 }, { debounce: { key: 'k', delayMs: 5 }, delayMs: 5 }),
    ).rejects.toMatchObject({ issues: [expect.objectContaining({ path: 'debounce' })] });
  });
});
