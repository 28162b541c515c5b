/**
 * The firing pass against PostgreSQL, in this process (fast): concurrent passes fire each tick
 * once; missed ticks follow catch_up; max_queued skips a tick and records it; the fired tasks are
 * ordinary PENDING rows carrying schedule_id and scheduled_for. The 30-second run across two
 * servers and two workers, with a restart, is apps/server/test/schedules.test.ts.
 */
import { ScheduleStore, schedules, tasks } from '@tasker/db';
import { createLogger, createScheduleApi, fireSchedules, type LifecycleEvent } from '@tasker/engine';
import { waitFor } from '@tasker/testing';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scheduler } from '../src/scheduler.ts';
import { Harness } from './harness.ts';

let harness: Harness;
let store: ScheduleStore;

beforeAll(async () => {
  harness = await Harness.start();
  store = new ScheduleStore(harness.db.db, harness.db.sql);
});
afterAll(async () => {
  await harness?.close();
});

const options = { graceMs: 10_000, catchUpMax: 50 };

/** A schedule whose next tick is `ago` ms in the past (as if nothing fired it since). */
async function dueSchedule(
  tenantId: string,
  values: { cron: string; catchUp?: 'none' | 'latest' | 'all'; letters?: boolean },
  agoMs: number,
) {
  const api = createScheduleApi(store, { minIntervalMs: 1000 });
  const { schedule } = await api.create({
    tenantId,
    ...(values.letters
      ? { name: 'find_longest_consecutive_letters', input: { string: 'aab' } }
      : { name: 'sum_two_numbers', input: { a: 1, b: 2 } }),
    cron: values.cron,
    catchUp: values.catchUp,
  });
  const first = new Date(Math.floor((Date.now() - agoMs) / 1000) * 1000);
  await harness.db.db.update(schedules).set({ nextFireAt: first }).where(eq(schedules.id, schedule.id));
  return { id: schedule.id, first };
}

const ticksOf = async (scheduleId: string) =>
  harness.db.db
    .select({
      scheduledFor: tasks.scheduledFor,
      status: tasks.status,
      tenantId: tasks.tenantId,
      input: tasks.input,
    })
    .from(tasks)
    .where(eq(tasks.scheduleId, scheduleId))
    .orderBy(tasks.scheduledFor);

describe('firing', () => {
  it('eight concurrent passes fire each tick of 20 due schedules exactly once', async () => {
    const made = await Promise.all(
      Array.from({ length: 20 }, (_, i) => dueSchedule(`t${i % 4}`, { cron: '* * * * * *' }, 5_000)),
    );
    const { limits } = harness.engine.lifecycle.resources;
    const results = await Promise.all(Array.from({ length: 8 }, () => fireSchedules(store, limits, options)));
    const fired = results.flatMap((r) => r.fired);
    for (const { id, first } of made) {
      const rows = await ticksOf(id);
      const seconds = rows.map((r) => ((r.scheduledFor as Date).getTime() - first.getTime()) / 1000);
      // Every second from the first due tick to now, each once.
      expect(seconds.slice(0, 5)).toEqual([0, 1, 2, 3, 4]);
      expect(new Set(seconds).size).toBe(seconds.length);
      expect(seconds).toEqual(seconds.map((_, i) => i));
      expect(
        rows.every(
          (r) => r.status === 'PENDING' && r.tenantId === `t${made.findIndex((m) => m.id === id) % 4}`,
        ),
      ).toBe(true);
    }
    // No pass claimed a task another one made.
    expect(new Set(fired.map((f) => f.id)).size).toBe(fired.length);
    const [{ n } = { n: -1 }] = await harness.db.sql<{ n: number }[]>`
      select count(*)::int as n from tasks where schedule_id = any(${made.map((m) => m.id)}::uuid[])`;
    expect(fired.length).toBe(n);
    // The schedules moved past now.
    const rows = await harness.db.db.select().from(schedules);
    for (const row of rows.filter((r) => made.some((m) => m.id === r.id)))
      expect(row.nextFireAt?.getTime()).toBeGreaterThan(Date.now() - 1500);
  });

  it('a tick is one task whatever fires it again: its key (task_keys) skips the second', async () => {
    const { id, first } = await dueSchedule('again', { cron: '* * * * * *' }, 2_000);
    const insert = () => harness.db.sql`
      insert into tasks (id, owner_id, name, input, schedule_id, scheduled_for)
      values (gen_random_uuid(), 'again', 'sum_two_numbers', '{"a":1,"b":2}', ${id}, ${first.toISOString()})`;
    expect((await insert()).count).toBe(1);
    // Any statement: the tick's key is held, so the trigger tasks_claim_keys skips the row.
    expect((await insert()).count).toBe(0);
    await fireSchedules(store, harness.engine.lifecycle.resources.limits, options);
    const rows = await ticksOf(id);
    expect(rows.filter((r) => r.scheduledFor?.getTime() === first.getTime())).toHaveLength(1);
  });

  it('missed ticks: catch_up none fires only the ticks within the grace, latest one more, all at most the bound', async () => {
    const down = 60_000; // a minute down, a grace of 10 s, at most 10 missed ticks
    const [none, latest, all] = await Promise.all(
      (['none', 'latest', 'all'] as const).map((catchUp) =>
        dueSchedule(`catch-${catchUp}`, { cron: '*/2 * * * * *', catchUp }, down),
      ),
    );
    // The pass's clock, fixed: a tick before at - grace was missed, one after it is on time.
    const at = new Date();
    await fireSchedules(
      store,
      harness.engine.lifecycle.resources.limits,
      { graceMs: 10_000, catchUpMax: 10 },
      () => at,
    );
    const late = (rows: { scheduledFor: Date | null }[]) =>
      rows.filter((r) => (r.scheduledFor as Date).getTime() < at.getTime() - 10_000).length;
    const [n, l, a] = await Promise.all([none, latest, all].map((s) => ticksOf((s as { id: string }).id)));
    expect(late(n ?? [])).toBe(0);
    expect(late(l ?? [])).toBe(1);
    // 25 two-second ticks were missed in the 50 s before the grace: the latest 10 fire.
    expect(late(a ?? [])).toBe(10);
    const lastMissed = (a ?? [])
      .filter((r) => (r.scheduledFor as Date).getTime() < at.getTime() - 10_000)
      .at(-1);
    expect(at.getTime() - 10_000 - (lastMissed?.scheduledFor?.getTime() ?? 0)).toBeLessThanOrEqual(2_000);
    // The on-time ticks (the last 10 s: 5 or 6 even seconds) fired in every policy.
    for (const rows of [n, l, a]) expect((rows ?? []).length - late(rows ?? [])).toBeGreaterThanOrEqual(5);
  });

  it("a tick refused by the tenant's max_queued is recorded as a skipped run, nothing stored for it", async () => {
    const { limits } = harness.engine.lifecycle.resources;
    await limits.store.setTenant('full', { maxQueued: 2 });
    limits.invalidate();
    const { id } = await dueSchedule('full', { cron: '* * * * * *' }, 4_500);
    await fireSchedules(store, limits, options);
    const rows = await ticksOf(id);
    expect(rows).toHaveLength(2);
    const [row] = await harness.db.db.select().from(schedules).where(eq(schedules.id, id));
    expect(row?.skippedRuns).toBeGreaterThanOrEqual(3);
    expect(row?.lastSkipReason).toBe('QUEUE_FULL');
    expect(row?.lastSkippedFor?.getTime()).toBeGreaterThan(rows[1]?.scheduledFor?.getTime() ?? Infinity);
    const [{ pending } = { pending: -1 }] = await harness.db.db
      .select({ pending: sql<number>`count(*)::int` })
      .from(tasks)
      .where(sql`${tasks.tenantId} = 'full' and ${tasks.status} = 'PENDING'`);
    expect(pending).toBe(2);
  });

  it("max_queued of tenants and of a task type in one pass: each holder's room, counted once", async () => {
    const { limits } = harness.engine.lifecycle.resources;
    await limits.store.setTenant('room-a', { maxQueued: 1 });
    await limits.store.setType('find_longest_consecutive_letters', { maxQueued: 3 });
    limits.invalidate();
    try {
      // Five or six due ticks each, room-a's first (due earlier): it takes 1 (its tenant's limit),
      // room-b the type's other 2.
      const a = await dueSchedule('room-a', { cron: '* * * * * *', letters: true }, 5_500);
      const b = await dueSchedule('room-b', { cron: '* * * * * *', letters: true }, 4_500);
      await fireSchedules(store, limits, options);
      expect(await ticksOf(a.id)).toHaveLength(1);
      expect(await ticksOf(b.id)).toHaveLength(2);
      const rows = await harness.db.db.select().from(schedules);
      for (const { id } of [a, b]) expect(rows.find((r) => r.id === id)?.lastSkipReason).toBe('QUEUE_FULL');
    } finally {
      await limits.store.setType('find_longest_consecutive_letters', { maxQueued: null });
      limits.invalidate();
    }
  });

  it('the ticks of a task type gone from the catalog make nothing, are recorded, and counted as refused', async () => {
    const { id } = await dueSchedule('gone', { cron: '* * * * * *' }, 2_500);
    await harness.db.db.update(schedules).set({ name: 'retired_type' }).where(eq(schedules.id, id));
    const events: LifecycleEvent[] = [];
    const scheduler = new Scheduler(
      store,
      { limits: harness.engine.lifecycle.resources.limits, observe: (event) => events.push(event) },
      { ...options, intervalMs: 20 },
      createLogger({ LOG_LEVEL: 'silent' }, 'scheduler'),
    );
    scheduler.start();
    try {
      await waitFor(() =>
        events.some((e) => e.kind === 'refused' && e.reason === 'UNKNOWN_TYPE' && e.tenantId === 'gone'),
      );
    } finally {
      await scheduler.stop();
    }
    expect(await ticksOf(id)).toHaveLength(0);
    const [row] = await harness.db.db.select().from(schedules).where(eq(schedules.id, id));
    expect(row?.lastSkipReason).toBe('UNKNOWN_TYPE');
    expect(row?.skippedRuns).toBeGreaterThanOrEqual(3);
  });

  it('a schedule this worker cannot plan (a zone it lacks) waits a minute; the others fire', async () => {
    const bad = await dueSchedule('unplanned', { cron: '* * * * * *' }, 10_000);
    await harness.db.db.update(schedules).set({ timezone: 'Mars/Olympus' }).where(eq(schedules.id, bad.id));
    // Due after it: a failed pass would stop it too.
    const good = await dueSchedule('unplanned', { cron: '* * * * * *' }, 2_500);
    const result = await fireSchedules(store, harness.engine.lifecycle.resources.limits, options);
    expect(result.unplanned.map((u) => u.id)).toContain(bad.id);
    expect(await ticksOf(bad.id)).toHaveLength(0);
    expect((await ticksOf(good.id)).length).toBeGreaterThanOrEqual(3);
    const [row] = await harness.db.db.select().from(schedules).where(eq(schedules.id, bad.id));
    expect(row?.nextFireAt?.getTime()).toBeGreaterThan(Date.now() + 50_000);
    // Its page is shown, without next fires.
    const api = createScheduleApi(store, { minIntervalMs: 1000 });
    expect((await api.get('unplanned', bad.id)).nextFires).toEqual([]);
  });

  it('a paused schedule fires nothing; a resume starts from now, without the paused ticks', async () => {
    const api = createScheduleApi(store, { minIntervalMs: 1000 });
    const { id } = await dueSchedule('paused', { cron: '* * * * * *' }, 3_000);
    await api.update('paused', id, { paused: true });
    await fireSchedules(store, harness.engine.lifecycle.resources.limits, options);
    expect(await ticksOf(id)).toHaveLength(0);
    const resumed = await api.update('paused', id, { paused: false });
    expect(new Date(resumed.nextFireAt ?? 0).getTime()).toBeGreaterThan(Date.now() - 1000);
  });
});
