/**
 * Statements by id bound created_at by the id's time (docs/partitioning.md, step 2: what lets a
 * table partitioned by created_at read only the partition an id names). Shown here the only way an
 * unpartitioned table can show it: a UUIDv7 task whose created_at was moved out of its id's window
 * is out of reach of every bounded statement, while a task whose id is no UUIDv7 (no bound) is
 * found whatever its created_at.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/index.ts';
import { createdAtWindow } from '../src/tasks/id-time.ts';
import { useStore } from './fixture.ts';

const db = useStore(4);

const insert = async (id: string) => {
  await db.store.insert({ id, tenantId: 'id-time', name: 'sum_two_numbers', input: { a: 1, b: 2 } });
  return id;
};

/** Moves the row's created_at a day back: out of a UUIDv7 id's window. */
const backdate = (id: string) =>
  db.client.sql`update tasks set created_at = created_at - interval '1 day' where id = ${id}`;

const error = {
  message: 'boom',
  name: 'Error',
  code: 'HANDLER_ERROR',
  attempt: 1,
  at: new Date().toISOString(),
};

describe('createdAtWindow', () => {
  it('spans a minute either side of the ids, and is undefined with an id that is no UUIDv7', () => {
    const ms = Date.UTC(2026, 11, 4, 12);
    expect(createdAtWindow([uuidv7(ms + 5000), uuidv7(ms)])).toEqual({
      from: new Date(ms - 60_000).toISOString(),
      to: new Date(ms + 65_000).toISOString(),
    });
    expect(createdAtWindow([uuidv7(ms), randomUUID()])).toBeUndefined();
    expect(createdAtWindow([])).toBeUndefined();
  });

  it('is undefined for an id whose time is past year 9999 (no task of ours), which a statement then reads unbounded', async () => {
    // Found by the REST property test: GET /tasks/e677d21f-0000-7000-8000-000000000000/events was a 500.
    const far = 'e677d21f-0000-7000-8000-000000000000';
    expect(createdAtWindow([far])).toBeUndefined();
    expect(await db.store.get(far)).toBeUndefined();
    expect(await db.store.getMany([far, uuidv7()])).toEqual([]);
  });
});

describe('statements by id', () => {
  it('find a UUIDv7 task in its window: get, getMany, versions, claim, progress, complete', async () => {
    const id = await insert(uuidv7());
    expect((await db.store.get(id))?.id).toBe(id);
    expect((await db.store.getMany([id])).map((r) => r.id)).toEqual([id]);
    expect(await db.store.versions([id])).toHaveLength(1);
    expect((await db.store.claim(id, 'w1', 1))?.status).toBe('RUNNING');
    expect(await db.store.setProgress(id, { done: 1 })).toBeTruthy();
    expect((await db.store.complete(id, 3))?.status).toBe('COMPLETED');
  });

  it('do not reach a UUIDv7 task whose created_at left its window', async () => {
    const id = await insert(uuidv7());
    await backdate(id);
    expect(await db.store.get(id)).toBeUndefined();
    expect(await db.store.getMany([id])).toEqual([]);
    expect(await db.store.versions([id])).toEqual([]);
    expect(await db.store.claim(id, 'w1', 1)).toBeUndefined();
    expect(await db.store.requestCancel(id)).toBeFalsy();
    const [row] = await db.client.sql<{ status: string }[]>`select status from tasks where id = ${id}`;
    expect(row?.status).toBe('PENDING');
  });

  it('reach a task whose id is no UUIDv7 whatever its created_at: claim, cancelRequested, fail', async () => {
    const id = await insert(randomUUID());
    await backdate(id);
    expect((await db.store.get(id))?.id).toBe(id);
    expect((await db.store.claim(id, 'w1', 1))?.status).toBe('RUNNING');
    expect(await db.store.requestCancel(id)).toBeTruthy();
    expect(await db.store.cancelRequested([id])).toEqual([id]);
    const failed = await db.store.fail({ id, error, cancelled: error, final: true });
    expect(failed?.status).toBe('CANCELLED');
  });
});
