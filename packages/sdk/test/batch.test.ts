/**
 * `runMany()` (POST /tasks/batch) and tags and metadata through the SDK, camelCase, against a live
 * server and worker: handles in order with created/matched, all or nothing with each bad item named
 * as the caller wrote it, and `list({ tags, metadataContains })`.
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

describe('runMany()', () => {
  it('answers one handle per item, in order, created or matched by its key', async () => {
    const tag = unique('batch');
    const key = unique('idem');
    const handles = await tasker.runMany([
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, tags: [tag], metadata: { n: 1 } },
      { name: 'find_longest_consecutive_letters', input: { string: 'aabbb' }, idempotencyKey: key },
      { name: 'sum_two_numbers', input: { a: 5, b: 5 }, idempotencyKey: key },
    ]);
    expect(handles.map((h) => [h.name, h.created, h.matched])).toEqual([
      ['sum_two_numbers', true, null],
      ['find_longest_consecutive_letters', true, null],
      ['sum_two_numbers', false, 'idempotency'],
    ]);
    expect(handles[2]?.id).toBe(handles[1]?.id);
    expect(await handles[0]?.result()).toBe(3);
    expect(await handles[1]?.result()).toBe(3);
    const task = await tasker.get(handles[0]?.id ?? '');
    expect(task).toMatchObject({ tags: [tag], metadata: { n: 1 } });
  });

  it('stores nothing when an item is invalid, and names each bad item as the caller wrote it', async () => {
    const tag = unique('refused');
    const error = await tasker
      .runMany([
        { name: 'sum_two_numbers', input: { a: 1, b: 2 }, tags: [tag] },
        { name: 'sum_two_numbers', input: { a: 1, b: 2 }, tags: [tag], maxAttempts: 0 },
        // @ts-expect-error: b must be a number
        { name: 'sum_two_numbers', input: { a: 1, b: 'x' }, tags: [tag] },
      ])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskerValidationError);
    const paths = (error as TaskerValidationError).issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['tasks.1.maxAttempts', 'tasks.2.input.b']));
    expect(paths.some((p) => p.startsWith('tasks.0'))).toBe(false);
    expect((await tasker.list({ tags: tag })).tasks).toEqual([]);
    // An unknown option is refused before anything is sent, naming its item.
    const local = await tasker
      // @ts-expect-error: options are camelCase
      .runMany([{ name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 5 }])
      .catch((e: unknown) => e);
    expect((local as TaskerValidationError).issues[0]?.path).toBe('tasks.0.delay_ms');
  });
});

describe('tags and metadata', () => {
  it('are taken by run() and found by list({ tags, metadataContains })', async () => {
    const tag = unique('tagged');
    const team = unique('team');
    const one = await tasker.run('sum_two_numbers', { a: 2, b: 2 }, { tags: [tag, 'x'], metadata: { team } });
    const two = await tasker.run('sum_two_numbers', { a: 3, b: 3 }, { tags: [tag], delayMs: 60_000 });
    const ids = async (options: Parameters<TaskerClient['list']>[0]) =>
      (await tasker.list(options)).tasks.map((t) => t.id).sort();
    expect(await ids({ tags: tag })).toEqual([one.id, two.id].sort());
    expect(await ids({ tags: [tag, 'x'] })).toEqual([one.id]);
    expect(await ids({ metadataContains: { team } })).toEqual([one.id]);
    expect((await tasker.list({ tags: tag, status: 'PENDING' })).tasks[0]).toMatchObject({
      id: two.id,
      tags: [tag],
      metadata: null,
    });
    const error = await tasker.list({ metadataContains: {} }).catch((e: unknown) => e);
    expect((error as TaskerValidationError).issues[0]?.path).toBe('metadataContains');
    await two.cancel();
  });
});
