import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Suspension } from '../src/index.ts';
import { useStore } from './fixture.ts';

// The store's side of child tasks (migration 0027): parent_id, the finishing trigger's wake of a
// parent (childrenDone) and cancel of its children, the waker's pass, retry's guard, depth.

const db = useStore(3);

const cancelled = { message: 'the task was cancelled', name: 'CancelledError', code: 'CANCELLED' };

async function insert(parentId?: string) {
  const id = randomUUID();
  const { created } = await db.store.insert({
    id,
    name: 'sum_two_numbers',
    input: { a: 1, b: 2 },
    maxAttempts: 3,
    ...(parentId ? { parentId } : {}),
  });
  expect(created).toBe(true);
  return id;
}

async function claimed(parentId?: string) {
  const id = await insert(parentId);
  expect(await db.store.claim(id, 'w1', 1)).toMatchObject({ status: 'RUNNING' });
  return id;
}

/** What the engine records when a run waits for `children`. */
const waitFor = (children: string[]): Suspension => ({
  stepId: '$children:0',
  seq: 0,
  waitingFor: { kind: 'children', children },
  until: null,
  output: { children },
});

const status = async (id: string) => (await db.store.get(id))?.status;

describe('child tasks in the db.store', () => {
  it("the last child's end moves its WAITING parent back to PENDING, in the child's commit", async () => {
    const parent = await claimed();
    const [a, b] = [await claimed(parent), await claimed(parent)] as [string, string];
    const waiting = await db.store.wait(parent, waitFor([a, b]));
    expect(waiting).toMatchObject({ status: 'WAITING', runAfter: null, waitingFor: { kind: 'children' } });
    await db.store.complete(a, 1);
    expect(await status(parent)).toBe('WAITING');
    await db.store.complete(b, 2);
    expect(await db.store.get(parent)).toMatchObject({ status: 'PENDING', waitingFor: null });
    expect((await db.store.children.summaries([parent])).get(parent)).toMatchObject({
      total: 2,
      byStatus: { COMPLETED: 2, RUNNING: 0 },
    });
    expect((await db.store.children.list(parent, 10)).map((c) => c.id)).toEqual([a, b]);
  });

  it('the waker catches a parent whose children had all ended before it waited', async () => {
    const parent = await claimed();
    const child = await claimed(parent);
    await db.store.complete(child, 1);
    await db.store.wait(parent, waitFor([child]));
    expect(await status(parent)).toBe('WAITING');
    // Nothing for the sleeps' waker (no run_after); the children's pass wakes it.
    expect((await db.store.wakeDue(100)).map((r) => r.id)).not.toContain(parent);
    expect((await db.store.children.wakeDone(100)).map((r) => r.id)).toContain(parent);
    expect(await status(parent)).toBe('PENDING');
  });

  it("a cancelled parent's unfinished children: queued ones CANCELLED (and theirs), running ones asked to stop", async () => {
    const parent = await claimed();
    const queued = await insert(parent);
    const grandchild = await insert(queued);
    const running = await claimed(parent);
    const done = await claimed(parent);
    await db.store.complete(done, 3);
    await db.store.wait(parent, waitFor([queued, running, done]));
    expect(await db.store.cancelPending(parent, cancelled)).toMatchObject({ status: 'CANCELLED' });
    expect(await db.store.get(queued)).toMatchObject({
      status: 'CANCELLED',
      error: { code: 'CANCELLED', message: expect.stringContaining('parent') },
    });
    expect(await status(grandchild)).toBe('CANCELLED');
    expect(await db.store.get(running)).toMatchObject({
      status: 'RUNNING',
      cancelRequestedAt: expect.any(Date),
    });
    expect(await db.store.children.cancelling(parent)).toEqual([running]);
    expect(await status(done)).toBe('COMPLETED');
    // No retry while a child is unfinished; once it has ended, yes.
    expect(await db.store.children.anyUnfinished(parent)).toBe(true);
    expect(await db.store.retry(parent)).toBeUndefined();
    await db.store.cancelRunning(running, cancelled);
    expect(await db.store.retry(parent)).toMatchObject({ status: 'PENDING' });
  });

  it('a parent that ends FAILED or EXPIRED cancels its unfinished children too: then it can be retried', async () => {
    // FAILED: its job lost for good while its children ran (failLost; a last attempt that failed
    // after submitting them ends the same way).
    const parent = await claimed();
    const queued = await insert(parent);
    const grandchild = await insert(queued);
    const running = await claimed(parent);
    const failure = { message: 'stalled', name: 'Error', code: 'STALLED' };
    expect(await db.store.failLost(parent, failure)).toMatchObject({ status: 'FAILED' });
    expect(await db.store.get(queued)).toMatchObject({
      status: 'CANCELLED',
      error: { code: 'CANCELLED', message: 'the task was cancelled: its parent task failed' },
    });
    expect(await status(grandchild)).toBe('CANCELLED');
    expect(await db.store.get(running)).toMatchObject({
      status: 'RUNNING',
      cancelRequestedAt: expect.any(Date),
    });
    expect(await db.store.retry(parent)).toBeUndefined(); // its running child has not stopped yet
    await db.store.cancelRunning(running, cancelled);
    expect(await db.store.retry(parent)).toMatchObject({ status: 'PENDING' });

    // EXPIRED: a parent given back to the queue, its ttl passed before it ran again.
    const late = await insert();
    const kid = await insert(late);
    await db.client.sql`update tasks set expires_at = now() - interval '1 second' where id = ${late}::uuid`;
    expect(
      (await db.store.expire([late], { message: 'expired', name: 'ExpiredError', code: 'EXPIRED' })).map(
        (r) => r.id,
      ),
    ).toEqual([late]);
    expect(await db.store.get(kid)).toMatchObject({
      status: 'CANCELLED',
      error: { message: 'the task was cancelled: its parent task expired' },
    });
    // A parent that completes leaves its children alone (none is unfinished in a handler's normal course).
    const fine = await claimed();
    const left = await insert(fine);
    await db.store.complete(fine, 1);
    expect(await status(left)).toBe('PENDING');
  });

  it('counts the ancestors of a task', async () => {
    const top = await insert();
    const one = await insert(top);
    const two = await insert(one);
    expect(await db.store.children.depth(top, 5)).toBe(0);
    expect(await db.store.children.depth(two, 5)).toBe(2);
    expect(await db.store.children.depth(two, 1)).toBe(2);
  });
});
