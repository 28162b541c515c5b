/**
 * Listing in steps of time (docs/partitioning.md, step 3): `TaskQueries.list` and a bulk
 * operation's pages read a day back from their top, then a week, a month, the rest. Their rows and
 * order must be those of one query over all time, across the windows' edges, for every cursor,
 * limit and created_after/created_before; a busy tenant's page is one query, a sparse one's up to four.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import type { TaskFilter, TaskStatus } from '../src/index.ts';
import { timeWindows } from '../src/tasks/time-steps.ts';
import { useStore } from './fixture.ts';

const db = useStore(4);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('timeWindows', () => {
  const now = Date.UTC(2026, 11, 4, 12);
  const at = (ms: number) => new Date(ms);

  it('widen back from now, the first open above, the last open below', () => {
    expect(timeWindows(undefined, undefined, now)).toEqual([
      { from: at(now - DAY), before: undefined },
      { from: at(now - 7 * DAY), before: at(now - DAY) },
      { from: at(now - 31 * DAY), before: at(now - 7 * DAY) },
      { before: at(now - 31 * DAY) },
    ]);
  });

  it('count back from a top, and stop at a bottom', () => {
    const top = at(now - 3 * DAY);
    expect(timeWindows(top, at(now - 12 * DAY), now)).toEqual([
      { from: at(now - 4 * DAY), before: top },
      { from: at(now - 10 * DAY), before: at(now - 4 * DAY) },
      { from: at(now - 12 * DAY), before: at(now - 10 * DAY) },
    ]);
    expect(timeWindows(top, at(now - 3.5 * DAY), now)).toEqual([{ from: at(now - 3.5 * DAY), before: top }]);
    expect(timeWindows(top, top, now)).toEqual([]);
    expect(timeWindows(top, at(now), now)).toEqual([]);
  });

  it('never reach before the year 1 (PostgreSQL refuses such a time): the window below is open', () => {
    const top = new Date('0001-01-10T00:00:00Z');
    expect(timeWindows(top, undefined, now)).toEqual([
      { from: at(top.getTime() - DAY), before: top },
      { from: at(top.getTime() - 7 * DAY), before: at(top.getTime() - DAY) },
      { before: at(top.getTime() - 7 * DAY) },
    ]);
  });
});

describe('a stepped listing', () => {
  const tenant = `steps-${randomUUID().slice(0, 8)}`;
  // Ages across every window's edge (and the first window's open top: a few seconds ahead), two
  // rows in one millisecond at some of them (the id orders them).
  const ages = [
    -20_000,
    0,
    0,
    HOUR,
    DAY - 1,
    DAY + 1,
    3 * DAY,
    7 * DAY,
    7 * DAY,
    8 * DAY,
    31 * DAY + 5,
    90 * DAY,
    400 * DAY,
  ];
  const statuses: TaskStatus[] = ['PENDING', 'FAILED', 'COMPLETED'];
  let all: { id: string; createdAt: Date }[] = [];
  const statusOf = new Map<string, TaskStatus>();

  const setUp = async () => {
    if (all.length > 0) return;
    const now = Date.now();
    for (const [i, age] of ages.entries()) {
      const id = randomUUID();
      await db.store.insert({ id, tenantId: tenant, name: 'sum_two_numbers', input: { a: i, b: 1 } });
      const status = statuses[i % statuses.length] ?? 'PENDING';
      statusOf.set(id, status);
      await db.client
        .sql`update tasks set created_at = ${new Date(now - age).toISOString()}::timestamptz, status = ${status},
        finished_at = case when ${status} = 'PENDING' then null else now() end where id = ${id}`;
    }
    all = (await db.store.queries.listWindow({ tenantId: tenant, limit: 100 })).map(({ id, createdAt }) => ({
      id,
      createdAt,
    }));
  };

  const ids = (rows: { id: string }[]) => rows.map((r) => r.id);

  it('reads what one query over all time reads, for every cursor, limit and bound', async () => {
    await setUp();
    expect(all).toHaveLength(ages.length);
    const now = Date.now();
    const bounds: Pick<TaskFilter, 'createdAfter' | 'createdBefore'>[] = [
      {},
      { createdAfter: new Date(now - 8 * DAY) },
      { createdBefore: new Date(now - 2 * DAY) },
      { createdAfter: new Date(now - 100 * DAY), createdBefore: new Date(now - DAY) },
      { createdAfter: new Date(now - 7 * DAY), createdBefore: new Date(now - 7 * DAY + 1) },
    ];
    for (const bound of bounds)
      for (const filter of [
        { tenantId: tenant, ...bound },
        { tenantId: tenant, statuses: ['FAILED' as const], ...bound },
      ])
        for (const cursor of [undefined, ...all])
          for (const limit of [1, 2, 3, 20]) {
            const page = { ...filter, limit, ...(cursor ? { cursor } : {}) };
            expect(ids(await db.store.queries.list(page)), JSON.stringify(page)).toEqual(
              ids(await db.store.queries.listWindow(page)),
            );
          }
  });

  it('takes a created_before in the first days of the year 1 (its windows stop at the year 1)', async () => {
    await setUp();
    const filter = { tenantId: tenant, createdBefore: new Date('0001-01-10T00:00:00Z'), limit: 5 };
    expect(await db.store.queries.list(filter)).toEqual([]);
  });

  it('walks every page of the tenant by its cursors, newest first, each row once', async () => {
    await setUp();
    const seen: string[] = [];
    let cursor: { createdAt: Date; id: string } | undefined;
    for (;;) {
      const page = await db.store.queries.list({ tenantId: tenant, limit: 2, ...(cursor ? { cursor } : {}) });
      const last = page.at(-1);
      if (!last) break;
      seen.push(...ids(page));
      cursor = { createdAt: last.createdAt, id: last.id };
    }
    expect(seen).toEqual(ids(all));
  });

  it('is one query when the first window fills the page, four for a tenant whose tasks are old', async () => {
    await setUp();
    const windows = vi.spyOn(db.store.queries, 'listWindow');
    try {
      await db.store.queries.list({ tenantId: tenant, limit: 3 });
      expect(windows).toHaveBeenCalledTimes(1);
      windows.mockClear();
      const page = await db.store.queries.list({ tenantId: tenant, limit: 3, cursor: all[7] });
      expect(ids(page)).toEqual(ids(all.slice(8, 11)));
      // A day back from the cursor holds one row (its twin), the week before one, the month before
      // one more: the page is full after three windows.
      expect(windows).toHaveBeenCalledTimes(3);
      windows.mockClear();
      expect(await db.store.queries.list({ tenantId: `${tenant}-none`, limit: 3 })).toEqual([]);
      expect(windows).toHaveBeenCalledTimes(4);
    } finally {
      windows.mockRestore();
    }
  });

  it("walks a bulk operation's pages across the windows, each actionable task once", async () => {
    await setUp();
    const filter: TaskFilter = { tenantId: tenant };
    const op = await db.store.bulk.create(
      { id: randomUUID(), tenantId: tenant, action: 'cancel', filter: {}, createdBy: null },
      filter,
    );
    // Cancel acts on PENDING (and RUNNING, WAITING) tasks made no later than the operation.
    const expected = ids(
      all.filter((row) => statusOf.get(row.id) === 'PENDING' && row.createdAt <= op.createdAt),
    );
    expect(op.matched).toBe(expected.length);
    const seen: string[] = [];
    let walk = op;
    for (;;) {
      const page = await db.store.bulk.page(walk, filter, 2);
      const last = page.at(-1);
      if (!last) break;
      seen.push(...ids(page));
      walk = { ...walk, cursorCreatedAt: last.createdAt, cursorId: last.id };
    }
    expect(seen).toEqual(expected);
  });
});
