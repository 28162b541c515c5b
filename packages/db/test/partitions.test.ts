import { beforeEach, describe, expect, it } from 'vitest';
import { migrateDatabase, TaskPartitions, uuidv7, weekName, weekStart } from '../src/index.ts';
import { useStore } from './fixture.ts';

// Partition maintenance (docs/partitioning.md, step 5) on a partitioned copy of the migrated tasks
// table in a schema of its own, as the migration of step 6 will leave it: a legacy partition
// [MINVALUE, cutover), weeks after it, the primary key (id, created_at) and an index to be built on
// each week, and the dependents' tables.
const db = useStore();
const S = 'parts';
const DAY = 24 * 3600 * 1000;
const WEEK = 7 * DAY;
const now = Date.UTC(2026, 11, 2, 15); // a Wednesday
const monday = Date.UTC(2026, 10, 30);

let partitions: TaskPartitions;

beforeEach(async () => {
  const sql = db.client.sql;
  await sql.unsafe(`drop schema if exists ${S} cascade`);
  await sql.unsafe(`create schema ${S}`);
  await sql.unsafe(
    `create table ${S}.tasks (like public.tasks including defaults including constraints) partition by range (created_at)`,
  );
  await sql.unsafe(`alter table ${S}.tasks add primary key (id, created_at)`);
  await sql.unsafe(`create index tasks_owner_created_idx on ${S}.tasks (owner_id, created_at)`);
  for (const dependent of ['webhook_deliveries', 'wait_tokens', 'task_keys'])
    await sql.unsafe(`create table ${S}.${dependent} (like public.${dependent} including defaults)`);
  await sql.unsafe(
    `create table ${S}.task_steps (like public.task_steps including defaults including constraints) partition by range (task_created_at)`,
  );
  await sql.unsafe(`alter table ${S}.task_steps add primary key (task_id, step_id, task_created_at)`);
  // The tables as they were: a legacy partition up to the cutover, with the tables' storage
  // settings; the steps' cutover the tasks' (0042 on an empty task_steps).
  await sql.unsafe(
    `create table ${S}.tasks_legacy partition of ${S}.tasks for values from (minvalue) to ('${new Date(monday - 2 * WEEK).toISOString()}') with (autovacuum_vacuum_scale_factor = 0.02)`,
  );
  await sql.unsafe(
    `create table ${S}.task_steps_legacy partition of ${S}.task_steps for values from (minvalue) to ('${new Date(monday - 2 * WEEK).toISOString()}')`,
  );
  partitions = new TaskPartitions(sql, S);
});

async function insert(createdAt: number, finishedAt: number | null, id = uuidv7(createdAt)): Promise<string> {
  await db.client.sql.unsafe(
    `insert into ${S}.tasks (id, owner_id, name, input, status, created_at, finished_at, updated_at)
     values ($1, 'default', 'sum_two_numbers', '{}', $2, $3, $4, now())`,
    [
      id,
      finishedAt === null ? 'PENDING' : 'COMPLETED',
      new Date(createdAt).toISOString(),
      finishedAt === null ? null : new Date(finishedAt).toISOString(),
    ],
  );
  return id;
}

/** A step of a task created at `createdAt`, in its week (`tasker_step_time` after the cutover). */
async function step(taskId: string, createdAt: number | null, stepId = 'a'): Promise<void> {
  await db.client.sql.unsafe(
    `insert into ${S}.task_steps (task_id, task_created_at, step_id, seq, status, started_at)
     values ($1, $2, $3, 0, 'completed', now())`,
    [taskId, createdAt === null ? '-infinity' : new Date(createdAt).toISOString(), stepId],
  );
}

const stepsOf = async () =>
  (
    await db.client.sql.unsafe<{ task_id: string; part: string }[]>(
      `select task_id::text, tableoid::regclass::text as part from ${S}.task_steps order by part, task_id`,
    )
  ).map((r) => [r.task_id, r.part.slice(S.length + 1)]);

describe('partition maintenance', () => {
  it('names weeks by their Monday, UTC', () => {
    expect(new Date(weekStart(now)).toISOString()).toBe('2026-11-30T00:00:00.000Z');
    expect(weekStart(monday)).toBe(monday);
    expect(weekStart(monday - 1)).toBe(monday - WEEK);
    expect(weekName(monday)).toBe('tasks_w20261130');
  });

  it('finds an unpartitioned table unpartitioned, with nothing to do', async () => {
    const sql = db.client.sql;
    await sql.unsafe('drop schema if exists plain cascade');
    await sql.unsafe('create schema plain');
    await sql.unsafe('create table plain.tasks (like public.tasks including defaults)');
    try {
      const plain = new TaskPartitions(sql, 'plain');
      expect(await plain.partitioned()).toBe(false);
      expect(await plain.list()).toEqual([]);
      expect(await plain.makeAhead(4, now)).toEqual([]);
      expect(await plain.dropExpired(new Date(now))).toEqual({ dropped: [], kept: [] });
      expect(await plain.weeksAhead(now)).toBe(0);
    } finally {
      await sql.unsafe('drop schema plain cascade');
    }
  });

  it('finds the migrated table as 0039 leaves a new database: legacy up to this week, four weeks ahead', async () => {
    const migrated = new TaskPartitions(db.client.sql);
    const thisWeek = weekStart(Date.now());
    expect(await migrated.partitioned()).toBe(true);
    const list = await migrated.list();
    expect(list[0]).toMatchObject({ name: 'tasks_legacy', from: null, detachPending: false });
    expect(list.slice(1).map((p) => p.name)).toEqual(
      [0, 1, 2, 3, 4].map((i) => weekName(thisWeek + i * WEEK)),
    );
    expect(await migrated.weeksAhead()).toBe(4);
    expect(await migrated.makeAhead(4)).toEqual([]);
    // task_steps (0040-0042), empty at its switch: its weeks are the tasks' (same bounds), so that
    // a week of steps goes with its week of tasks.
    const steps = await migrated.list('task_steps');
    expect(steps.map((p) => [p.name, p.from, p.to])).toEqual(
      list.map((p) => [p.name.replace(/^tasks/, 'task_steps'), p.from, p.to]),
    );
  });

  it('makes the missing weeks ahead at every migration run (a process start), not only in the sweeper', async () => {
    const migrated = new TaskPartitions(db.client.sql);
    const last = (await migrated.list()).at(-1);
    expect(last).toBeDefined();
    await db.client.sql.unsafe(`alter table public.tasks detach partition public.${last?.name}`);
    await db.client.sql.unsafe(`drop table public.${last?.name}`);
    expect(await migrated.weeksAhead()).toBe(3);
    await migrateDatabase(db.env.databaseUrl);
    expect((await migrated.list()).at(-1)?.name).toBe(last?.name);
    expect(await migrated.weeksAhead()).toBe(4);
  });

  it('makes the weeks from the legacy partition to `weeks` ahead, each with the indexes and storage settings, once', async () => {
    expect(await partitions.partitioned()).toBe(true);
    expect(await partitions.weeksAhead(now)).toBe(0);
    const made = await partitions.makeAhead(4, now);
    const weeks = ['w20261116', 'w20261123', 'w20261130', 'w20261207', 'w20261214', 'w20261221', 'w20261228'];
    expect(made).toEqual([...weeks.map((w) => `tasks_${w}`), ...weeks.map((w) => `task_steps_${w}`)]);
    expect(await partitions.makeAhead(4, now)).toEqual([]); // once
    expect(await partitions.weeksAhead(now)).toBe(4);
    const list = await partitions.list();
    expect(list.map((p) => p.name)).toEqual(['tasks_legacy', ...weeks.map((w) => `tasks_${w}`)]);
    expect((await partitions.list('task_steps')).map((p) => [p.name, p.from, p.to])).toEqual(
      list.map((p) => [p.name.replace(/^tasks/, 'task_steps'), p.from, p.to]),
    );
    for (const [i, p] of list.slice(1).entries())
      expect([p.from?.getTime(), p.to.getTime()]).toEqual([monday + (i - 2) * WEEK, monday + (i - 1) * WEEK]);
    // The parent's indexes were built on each week at its attach; its storage settings copied.
    const [week] = await db.client.sql<{ indexes: number; options: string[] | null }[]>`
      select (select count(*)::int from pg_index where indrelid = c.oid) as indexes, c.reloptions as options
      from pg_class c where c.oid = to_regclass(${`${S}.tasks_w20261207`})`;
    expect(week).toEqual({ indexes: 2, options: ['autovacuum_vacuum_scale_factor=0.02'] });
    // A row of this week goes to its partition; one beyond the last week made has none.
    const id = await insert(now, null);
    const [row] = await db.client.sql.unsafe<{ part: string }[]>(
      `select tableoid::regclass::text as part from ${S}.tasks where id = $1`,
      [id],
    );
    expect(row?.part).toBe(`${S}.tasks_w20261130`);
    await expect(insert(monday + 6 * WEEK, null)).rejects.toThrow(/no partition/);
  });

  it('drops the weeks past the cutoff whose tasks all finished before it, with their dependents, and keeps the others', async () => {
    await partitions.makeAhead(1, now);
    const old = monday - 2 * WEEK; // tasks_w20261116
    const gone = await insert(old + DAY, old + DAY + 1000);
    await db.client.sql.unsafe(
      `insert into ${S}.task_keys (owner_id, kind, key, task_id, task_created_at) values ('default', 'idempotency', 'k', $1, $2)`,
      [gone, new Date(old + DAY).toISOString()],
    );
    const stillRunning = await insert(old + WEEK + DAY, null); // tasks_w20261123
    await step(gone, old + DAY);
    await step(stillRunning, old + WEEK + DAY);
    const cutoff = new Date(monday + DAY);
    const report = await partitions.dropExpired(cutoff);
    // Each week of tasks with its week of steps, dropped whole.
    expect(report.dropped).toEqual([
      'task_steps_legacy',
      'tasks_legacy',
      'task_steps_w20261116',
      'tasks_w20261116',
    ]);
    expect(report.kept).toEqual([{ name: 'tasks_w20261123', why: `task ${stillRunning} is unfinished` }]);
    expect((await partitions.list()).map((p) => p.name)).toEqual([
      'tasks_w20261123',
      'tasks_w20261130',
      'tasks_w20261207',
    ]);
    expect((await partitions.list('task_steps')).map((p) => p.name)).toEqual([
      'task_steps_w20261123',
      'task_steps_w20261130',
      'task_steps_w20261207',
    ]);
    expect(await stepsOf()).toEqual([[stillRunning, 'task_steps_w20261123']]);
    const [keys] = await db.client.sql.unsafe<{ n: number }[]>(
      `select count(*)::int as n from ${S}.task_keys`,
    );
    expect(keys?.n).toBe(0);
    // Its task finished, but after the cutoff (a retry by hand, say): still kept.
    await db.client.sql.unsafe(`update ${S}.tasks set status = 'COMPLETED', finished_at = $2 where id = $1`, [
      stillRunning,
      new Date(monday + 2 * DAY).toISOString(),
    ]);
    const later = await partitions.dropExpired(cutoff);
    expect(later.kept[0]?.why).toMatch(/finished at 2026-12-02T00:00:00.000Z, after the cutoff/);
    expect((await partitions.dropExpired(new Date(monday + 3 * DAY))).dropped).toEqual([
      'task_steps_w20261123',
      'tasks_w20261123',
    ]);
    expect(await stepsOf()).toEqual([]);
  });

  it('finishes a detach that was interrupted, and drops the week', async () => {
    await partitions.makeAhead(0, now);
    const old = monday - 2 * WEEK;
    await insert(old + DAY, old + DAY + 1000);
    // A DETACH … CONCURRENTLY cut short leaves the partition "detach pending" (simulated: the flag).
    const [{ oid } = { oid: 0 }] = await db.client.sql<{ oid: number }[]>`
      select to_regclass(${`${S}.tasks_w20261116`})::oid::int as oid`;
    await db.client.sql`update pg_inherits set inhdetachpending = true where inhrelid = ${oid}`;
    expect((await partitions.list()).find((p) => p.name === 'tasks_w20261116')?.detachPending).toBe(true);
    const report = await partitions.dropExpired(new Date(monday));
    expect(report.dropped).toContain('tasks_w20261116');
  });

  it("deletes a dropped week's dependents also when it finishes a detach cut short, and keeps an unfinished week's", async () => {
    await partitions.makeAhead(0, now);
    const old = monday - 2 * WEEK;
    const done = await insert(old + DAY, old + DAY + 1000); // tasks_w20261116: finished
    const running = await insert(old + WEEK + DAY, null); // tasks_w20261123: unfinished
    for (const id of [done, running])
      await db.client.sql.unsafe(
        `insert into ${S}.wait_tokens (id, owner_id, task_id, step_id, secret_hash, timeout_at)
         values (gen_random_uuid(), 'default', $1::uuid, 's', md5($1::text), now() + interval '1 day')`,
        [id],
      );
    const pending = async (name: string) => {
      const [{ oid } = { oid: 0 }] = await db.client.sql<{ oid: number }[]>`
        select to_regclass(${`${S}.${name}`})::oid::int as oid`;
      await db.client.sql`update pg_inherits set inhdetachpending = true where inhrelid = ${oid}`;
    };
    await pending('tasks_w20261116');
    expect((await partitions.dropExpired(new Date(monday + 3 * DAY))).dropped).toContain('tasks_w20261116');
    await pending('tasks_w20261123');
    const report = await partitions.dropExpired(new Date(monday + 3 * DAY));
    expect(report.kept).toContainEqual({
      name: 'tasks_w20261123',
      why: `task ${running} is unfinished (its detach was cut short: attached again)`,
    });
    const tokens = await db.client.sql.unsafe<{ task_id: string }[]>(`select task_id from ${S}.wait_tokens`);
    expect(tokens.map((t) => t.task_id)).toEqual([running]);
  });

  it('settles the weeks a crash left detached: one with an unfinished task attached again, the other dropped', async () => {
    await partitions.makeAhead(0, now);
    const old = monday - 2 * WEEK;
    await insert(old + DAY, old + DAY + 1000); // tasks_w20261116: finished
    const retried = await insert(old + WEEK + DAY, null); // tasks_w20261123: retried in that instant
    for (const week of ['tasks_w20261116', 'tasks_w20261123'])
      await db.client.sql.unsafe(`alter table ${S}.tasks detach partition ${S}.${week}`);
    const report = await partitions.dropExpired(new Date(monday));
    expect(report.dropped).toContain('tasks_w20261116');
    expect(report.kept).toContainEqual({
      name: 'tasks_w20261123',
      why: `task ${retried} is unfinished (left detached: attached again)`,
    });
    const [row] = await db.client.sql.unsafe<{ status: string }[]>(
      `select status from ${S}.tasks where id = $1`,
      [retried],
    );
    expect(row?.status).toBe('PENDING');
    const [left] = await db.client.sql<{ n: number }[]>`
      select count(*)::int as n from pg_class where relname = 'tasks_w20261116'`;
    expect(left?.n).toBe(0);
  });

  it('attaches again a week whose detach was cut short but which is not past the cutoff', async () => {
    await partitions.makeAhead(1, now);
    const [{ oid } = { oid: 0 }] = await db.client.sql<{ oid: number }[]>`
      select to_regclass(${`${S}.tasks_w20261207`})::oid::int as oid`;
    await db.client.sql`update pg_inherits set inhdetachpending = true where inhrelid = ${oid}`;
    const report = await partitions.dropExpired(new Date(monday - 2 * WEEK));
    expect(report.kept).toContainEqual({
      name: 'tasks_w20261207',
      why: 'not past the cutoff (its detach was cut short: attached again)',
    });
    const week = (await partitions.list()).find((p) => p.name === 'tasks_w20261207');
    expect(week).toMatchObject({ detachPending: false, from: new Date(monday + WEEK) });
    expect(await insert(monday + WEEK + DAY, null)).toBeTruthy();
  });

  it("deletes the steps of a week before the steps' cutover row by row, and drops their legacy partition once no such week is left", async () => {
    // As 0042 leaves a table that held steps: the steps' cutover a week after the tasks', the
    // steps of the tasks before it at '-infinity' in task_steps_legacy.
    const sql = db.client.sql;
    await sql.unsafe(`drop table ${S}.task_steps_legacy`);
    await sql.unsafe(
      `create table ${S}.task_steps_legacy partition of ${S}.task_steps for values from (minvalue) to ('${new Date(monday - WEEK).toISOString()}')`,
    );
    await partitions.makeAhead(0, now);
    expect((await partitions.list('task_steps')).map((p) => p.name)).toEqual([
      'task_steps_legacy',
      'task_steps_w20261123',
      'task_steps_w20261130',
    ]);
    const old = monday - 2 * WEEK; // tasks_w20261116: its steps in the legacy partition
    const done = await insert(old + DAY, old + DAY + 1000);
    const running = await insert(old + 2 * DAY, null);
    const next = await insert(old + WEEK + DAY, old + WEEK + DAY + 1000); // tasks_w20261123
    await step(done, null);
    await step(running, null);
    await step(next, old + WEEK + DAY);
    // tasks_w20261116 kept (a task unfinished): its steps and the legacy partition stay.
    let report = await partitions.dropExpired(new Date(monday));
    expect(report.dropped).toEqual(['tasks_legacy', 'task_steps_w20261123', 'tasks_w20261123']);
    expect(report.kept.map((k) => k.name)).toEqual(['tasks_w20261116']);
    expect(await stepsOf()).toEqual([done, running].sort().map((id) => [id, 'task_steps_legacy']));
    // Once it can go: its tasks' steps deleted by row, then the legacy partition dropped.
    await sql.unsafe(`update ${S}.tasks set status = 'COMPLETED', finished_at = $2 where id = $1`, [
      running,
      new Date(old + 3 * DAY).toISOString(),
    ]);
    report = await partitions.dropExpired(new Date(monday));
    expect(report.dropped).toEqual(['tasks_w20261116', 'task_steps_legacy']);
    expect(await stepsOf()).toEqual([]);
    expect((await partitions.list('task_steps')).map((p) => p.name)).toEqual(['task_steps_w20261130']);
  });

  it('settles a week of steps a crash left detached: attached again beside its week of tasks, dropped without it', async () => {
    await partitions.makeAhead(0, now);
    const old = monday - 2 * WEEK;
    const kept = await insert(old + WEEK + DAY, null); // tasks_w20261123: unfinished
    await step(kept, old + WEEK + DAY);
    const [{ oid } = { oid: 0 }] = await db.client.sql<{ oid: number }[]>`
      select to_regclass(${`${S}.task_steps_w20261116`})::oid::int as oid`;
    await db.client.sql`update pg_inherits set inhdetachpending = true where inhrelid = ${oid}`;
    await db.client.sql.unsafe(`alter table ${S}.task_steps detach partition ${S}.task_steps_w20261123`);
    await db.client.sql.unsafe(`alter table ${S}.tasks detach partition ${S}.tasks_w20261116`);
    await db.client.sql.unsafe(`drop table ${S}.tasks_w20261116`);
    const report = await partitions.dropExpired(new Date(monday - 2 * WEEK));
    expect(report.dropped).toContain('task_steps_w20261116');
    expect(report.kept).toContainEqual({
      name: 'task_steps_w20261123',
      why: 'its week of tasks is attached (left detached: attached again)',
    });
    expect(await stepsOf()).toEqual([[kept, 'task_steps_w20261123']]);
  });
});
