/**
 * A new task's created_at is its UUIDv7 id's time (docs/partitioning.md: an id names its row's
 * partition), on every insert path (single, batch, debounced, schedule ticks share CREATED_AT);
 * an id over a minute from PostgreSQL's clock is refused; an id that is no UUIDv7 gets now().
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/index.ts';
import { useStore } from './fixture.ts';

const db = useStore(4);

const task = (id: string, extra: object = {}) => ({
  id,
  tenantId: 'created-at',
  name: 'sum_two_numbers',
  input: { a: 1, b: 2 },
  ...extra,
});

const createdAt = async (id: string) => {
  const [row] = await db.client.sql<{ ms: number }[]>`
    select (extract(epoch from created_at) * 1000)::float8 as ms from tasks where id = ${id}`;
  return row?.ms;
};

describe("a task's created_at", () => {
  it("is its UUIDv7 id's time, to the millisecond, on a single, a batched and a debounced insert", async () => {
    const ms = Date.now() - 30_000;
    const single = uuidv7(ms);
    const batched = [uuidv7(ms + 1), uuidv7(ms + 2)];
    const debounced = uuidv7(ms + 3);
    await db.store.insert(task(single));
    await db.store.insertBatch(batched.map((id) => task(id)));
    await db.store.insert(task(debounced, { debounceKey: 'k', debounceDelayMs: 60_000 }));
    expect(await createdAt(single)).toBe(ms);
    expect(await Promise.all(batched.map(createdAt))).toEqual([ms + 1, ms + 2]);
    expect(await createdAt(debounced)).toBe(ms + 3);
  });

  it("refuses an id over a minute ahead of PostgreSQL's clock or an hour behind, and stores nothing", async () => {
    const early = uuidv7(Date.now() - 2 * 3_600_000);
    const late = uuidv7(Date.now() + 120_000);
    const refused = /over 60 s ahead of PostgreSQL's clock or over 60 min behind it/;
    await expect(db.store.insert(task(early))).rejects.toThrow(refused);
    await expect(db.store.insertBatch([task(uuidv7()), task(late)])).rejects.toThrow(refused);
    const [{ n } = { n: -1 }] = await db.client.sql<{ n: number }[]>`
      select count(*)::int as n from tasks where id = any(${[early, late]}::uuid[])`;
    expect(n).toBe(0);
  });

  it('takes an id made minutes before its statement ran (a wait for a connection or a lock), at its own time', async () => {
    const ms = Date.now() - 5 * 60_000;
    const waited = uuidv7(ms);
    await db.store.insert(task(waited));
    expect(await createdAt(waited)).toBe(ms);
  });

  it('is now() for an id that is no UUIDv7', async () => {
    const id = randomUUID();
    const before = Date.now();
    await db.store.insert(task(id));
    const at = (await createdAt(id)) ?? 0;
    expect(at).toBeGreaterThanOrEqual(before - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 1000);
  });
});
