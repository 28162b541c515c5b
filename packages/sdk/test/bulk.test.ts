/**
 * The SDK's bulk actions: `bulk.cancel/retry(filter)` (camelCase, `list()`'s filter), with
 * `{ dryRun: true }` a count, `bulk.wait(id)` following the operation to its end, refusals named as
 * written. Against a real server and worker (AUTH_MODE disabled).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BulkOperation,
  createTaskerClient,
  type TaskerClient,
  TaskerValidationError,
} from '../src/index.ts';
import { type LiveStack, startLiveStack } from './stack.ts';

let stack: LiveStack;
let tasker: TaskerClient;

beforeAll(async () => {
  stack = await startLiveStack({ BULK_POLL_MS: '100' });
  tasker = createTaskerClient({ url: stack.url });
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

describe('bulk actions', () => {
  it('counts, cancels every matching task, and follows the operation to its end', async () => {
    // Delayed by an hour: they stay PENDING until cancelled.
    const later = { delayMs: 3_600_000 };
    const mine = await Promise.all(
      Array.from({ length: 12 }, (_, i) => tasker.run('sum_two_numbers', { a: i, b: 1 }, later)),
    );
    const other = await tasker.run('sum_two_numbers', { a: 100, b: 1 }, later);
    const filter = { name: 'sum_two_numbers', status: 'PENDING', inputContains: { b: 1 } } as const;
    const kept = { ...filter, inputContains: { a: 100 } };

    const count = await tasker.bulk.cancel(filter, { dryRun: true });
    expect(count).toEqual({ dryRun: true, action: 'cancel', matched: 13 });
    expect((await tasker.bulk.cancel(kept, { dryRun: true })).matched).toBe(1);

    const started = await tasker.bulk.cancel({ ...filter, createdBefore: new Date() });
    expect(started).toMatchObject({ action: 'cancel', status: 'running', matched: 13, done: 0 });
    const seen: BulkOperation[] = [];
    const ended = await tasker.bulk.wait(started.id, { intervalMs: 100, onProgress: (op) => seen.push(op) });
    expect(ended).toMatchObject({ status: 'done', matched: 13, done: 13, error: null });
    expect(seen.at(-1)).toEqual(ended);
    for (const handle of [...mine, other]) expect((await handle.get()).status).toBe('CANCELLED');

    // Retry them: each runs again now (a retry starts a new round at once) and completes.
    const retried = await tasker.bulk.wait(
      (await tasker.bulk.retry({ name: 'sum_two_numbers', status: 'CANCELLED' })).id,
    );
    expect(retried).toMatchObject({ action: 'retry', status: 'done', matched: 13, done: 13 });
    expect((await tasker.bulk.operation(retried.id)).id).toBe(retried.id);
    expect(await Promise.all(mine.map((handle) => handle.result()))).toEqual(mine.map((_, i) => i + 1));
  }, 60_000);

  it('refuses an empty filter and names a bad field as written', async () => {
    const empty = await tasker.bulk.cancel({}).catch((error: unknown) => error);
    expect(empty).toBeInstanceOf(TaskerValidationError);
    expect((empty as Error).message).toMatch(/give at least one filter/);
    const bad = await tasker.bulk
      .retry({ createdAfter: 'yesterday' }, { dryRun: true })
      .catch((error: unknown) => error);
    expect(bad).toBeInstanceOf(TaskerValidationError);
    expect((bad as TaskerValidationError).issues.map((i) => i.path)).toEqual(['createdAfter']);
    const typo = await tasker.bulk
      .cancel({ created_after: '2026-01-01T00:00:00Z' } as never)
      .catch((error: unknown) => error);
    expect((typo as TaskerValidationError).issues[0]?.path).toBe('created_after');
  });
});
