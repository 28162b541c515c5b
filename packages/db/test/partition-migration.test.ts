/**
 * Migrations 0037-0042 on a database as an earlier release left it (migrated to 0036, holding
 * tasks of every status and every key, and durable steps): tasks and then task_steps become the
 * first partition of a partitioned table of the same name in place (docs/partitioning.md,
 * "Migrating an existing table"), every row, key and index kept (no index built anew), and the
 * service's statements go on serving the old rows (UUIDv4 ids: no time to prune by) beside new ones.
 */
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDb,
  type DbClient,
  migrateDatabase,
  type TaskInsert,
  TaskPartitions,
  TaskStore,
  uuidv7,
  weekName,
  weekStart,
} from '../src/index.ts';

const WEEK = 7 * 24 * 3600 * 1000;

let env: TestEnv;
let client: DbClient;
let store: TaskStore;

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl, { until: '0036_queue_in_handouts' });
  client = createDb(env.databaseUrl, { max: 3 });
  store = new TaskStore(client);
});

afterAll(async () => {
  await client?.close();
  await env?.cleanup();
});

const task = (fields: Partial<TaskInsert> = {}): TaskInsert => ({
  id: randomUUID(),
  name: 'sum_two_numbers',
  input: { a: 1, b: 2 },
  maxAttempts: 1,
  ...fields,
});

async function inserted(fields: Partial<TaskInsert> = {}): Promise<string> {
  const { row, created } = await store.insert(task(fields));
  expect(created).toBe(true);
  return row.id;
}

const sql = () => client.sql;
const snapshot = async () => ({
  tasks: await sql()`select to_jsonb(t) as row from tasks t order by id`,
  keys: await sql()`select * from task_keys order by owner_id, kind, key`,
});
const indexOids = async (table: string) =>
  Object.fromEntries(
    (
      await sql()<{ name: string; oid: number }[]>`
        select c.relname as name, c.oid::int as oid from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = ${table}::regclass`
    ).map((r) => [r.name, r.oid]),
  );
const partitionOf = async (id: string) =>
  (await sql()<{ part: string }[]>`select tableoid::regclass::text as part from tasks where id = ${id}`)[0]
    ?.part;

/** The tasks of the old table, by what each is. */
const old: Record<string, string> = {};
/** task_steps' key index (0041), before its switch. */
let stepKeyIndex: number | undefined;

describe('partitioning tasks and task_steps in place (0037-0042)', () => {
  it('makes the table its first partition: every row, key and index kept, no index built', async () => {
    old.idempotent = await inserted({ idempotencyKey: 'idem-a' });
    old.singleton = await inserted({ singletonKey: 'single-b' });
    await store.claim(old.singleton, 'w1', 1);
    old.debounced = await inserted({ id: uuidv7(), debounceKey: 'deb-c', debounceDelayMs: 60_000 });
    old.completed = await inserted();
    await store.claim(old.completed, 'w1', 1);
    await store.complete(old.completed, 3);
    old.failed = await inserted({ id: uuidv7() });
    await store.claim(old.failed, 'w1', 1);
    await store.fail({
      id: old.failed,
      error: { message: 'boom', name: 'Error', code: 'HANDLER_ERROR' },
      cancelled: { message: 'cancelled', name: 'CancelledError', code: 'CANCELLED' },
      final: true,
    });
    old.cancelled = await inserted();
    await store.cancelPending(old.cancelled, {
      message: 'cancelled',
      name: 'CancelledError',
      code: 'CANCELLED',
    });
    old.tick = randomUUID();
    await sql()`insert into tasks (id, name, input, schedule_id, scheduled_for)
      values (${old.tick}, 'sum_two_numbers', '{}', ${randomUUID()}, now())`;
    // A parent waiting for its child, the child running.
    old.parent = await inserted();
    await store.claim(old.parent, 'w1', 1);
    old.child = await inserted({ parentId: old.parent });
    await store.claim(old.child, 'w1', 1);
    await sql()`update tasks set status = 'WAITING', waiting_for = '{"kind":"children"}', version = version + 1
      where id = ${old.parent}`;
    // Durable steps of the running singleton, as the release before 0040 wrote them.
    await sql()`insert into task_steps (task_id, step_id, seq, status, output, started_at, finished_at)
      values (${old.singleton}, 'a', 0, 'completed', '"first"', now(), now()),
             (${old.singleton}, 'b', 1, 'failed', null, now(), now())`;
    const before = await snapshot();
    expect(before.tasks).toHaveLength(9);
    expect(before.keys.map((k) => k.kind).sort()).toEqual([
      'debounce',
      'idempotency',
      'schedule',
      'singleton',
    ]);
    const indexesBefore = await indexOids('tasks');

    await migrateDatabase(env.databaseUrl, { until: '0041_task_steps_partition_prepare' });
    const stepIndexesBefore = await indexOids('task_steps');
    const stepsBefore = await sql()`select * from task_steps order by task_id, step_id`;
    expect(stepsBefore.map((r) => r.task_created_at)).toEqual(['-infinity', '-infinity']);
    await migrateDatabase(env.databaseUrl);

    const partitions = new TaskPartitions(sql());
    expect(await partitions.partitioned()).toBe(true);
    const list = await partitions.list();
    // Not empty: the cutover is the Monday of the week after next (0037), the weeks from it made
    // to four weeks after the current one.
    const cutover = weekStart(Date.now()) + 2 * WEEK;
    expect(list[0]).toEqual({
      name: 'tasks_legacy',
      from: null,
      to: new Date(cutover),
      detachPending: false,
    });
    expect(list.slice(1).map((p) => p.name)).toEqual([0, 1, 2].map((i) => weekName(cutover + i * WEEK)));
    expect(await partitions.weeksAhead()).toBe(4);

    expect(await snapshot()).toEqual(before);
    for (const id of Object.values(old)) expect(await partitionOf(id)).toBe('tasks_legacy');
    // Each index the partitioned table keeps is the old one, renamed and attached (same oid):
    // nothing was built under the switch's lock. The old key and unique indexes are gone.
    const indexesAfter = await indexOids('tasks_legacy');
    const gone = [
      'tasks_pkey',
      'tasks_owner_idempotency_idx',
      'tasks_owner_singleton_idx',
      'tasks_schedule_tick_idx',
    ];
    const afterOids = new Set(Object.values(indexesAfter));
    for (const [name, oid] of Object.entries(indexesBefore)) {
      const renamed = `tasks_legacy${name.slice('tasks'.length)}`;
      if (gone.includes(name)) expect(afterOids.has(oid), name).toBe(false);
      else expect(indexesAfter[renamed], name).toBe(oid);
    }
    // And 0038's two, built concurrently before the switch: the new key's (the partition's
    // primary key now) and the tick index's twin.
    expect(Object.keys(indexesAfter).sort()).toEqual(
      [
        ...Object.keys(indexesBefore)
          .filter((name) => !gone.includes(name))
          .map((name) => `tasks_legacy${name.slice('tasks'.length)}`),
        'tasks_legacy_pkey',
        'tasks_legacy_schedule_tick_plain_idx',
      ].sort(),
    );
    const attached = await sql()<{ n: number }[]>`
      select count(*)::int as n from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where c.relname like 'tasks_legacy%' and c.relkind = 'i'`;
    expect(attached[0]?.n).toBe(Object.keys(indexesAfter).length); // each one a partition of the parent's

    // task_steps (0040-0042) on an upgraded installation: expanded, not switched yet (a release
    // before may still be writing steps, its upserts naming the old key): every old row at
    // '-infinity', 0041's key index beside the old primary key, the cutover the Monday after next.
    const [shape] = await sql()`select relkind from pg_class where oid = 'task_steps'::regclass`;
    expect(shape?.relkind).toBe('r');
    expect(await sql()`select * from task_steps order by task_id, step_id`).toEqual(stepsBefore);
    expect(Object.keys(await indexOids('task_steps')).sort()).toEqual([
      'task_steps_key_idx',
      'task_steps_pkey',
    ]);
    const [step] = await sql()`select tasker_step_cutover() as cutover`;
    expect(new Date(step?.cutover)).toEqual(new Date(weekStart(Date.now()) + 2 * WEEK));
    stepKeyIndex = stepIndexesBefore.task_steps_key_idx;
  });

  it('serves the old rows and new ones by the same statements: keys, children, retries', async () => {
    expect((await store.get(old.idempotent ?? ''))?.status).toBe('PENDING');
    expect(
      (await store.getMany([old.completed ?? '', old.failed ?? ''])).map((t) => t.status).sort(),
    ).toEqual(['COMPLETED', 'FAILED']);
    // The keys the old rows hold still answer.
    const again = await store.insert(task({ idempotencyKey: 'idem-a' }));
    expect([again.created, again.matched, again.row.id]).toEqual([false, 'idempotency', old.idempotent]);
    const single = await store.insert(task({ singletonKey: 'single-b' }));
    expect([single.created, single.matched, single.row.id]).toEqual([false, 'singleton', old.singleton]);
    const debounced = await store.insert(
      task({ debounceKey: 'deb-c', debounceDelayMs: 60_000, input: { a: 5, b: 5 } }),
    );
    expect([debounced.created, debounced.matched, debounced.row.id]).toEqual([
      false,
      'debounce',
      old.debounced,
    ]);
    expect(debounced.row.input).toEqual({ a: 5, b: 5 });
    // An old child's end wakes its old parent (the finishing trigger, the parent's id without a time).
    await store.complete(old.child ?? '', 1);
    expect((await store.get(old.parent ?? ''))?.status).toBe('PENDING');
    // The singleton key goes with its task's end, and is free for a new one.
    await store.complete(old.singleton ?? '', 1);
    const fresh = await store.insert(task({ id: uuidv7(), singletonKey: 'single-b' }));
    expect(fresh.created).toBe(true);
    // A retry by hand of an old failed task.
    expect((await store.retry(old.failed ?? ''))?.status).toBe('PENDING');
    // A new task of now lies before the cutover: the old table takes it; one of the cutover's week
    // goes to that week's partition, and is found by its id's time.
    expect(await partitionOf(fresh.row.id)).toBe('tasks_legacy');
    const cutover = weekStart(Date.now()) + 2 * WEEK;
    const later = uuidv7(cutover + 3_600_000);
    await sql()`insert into tasks (id, name, input, created_at) values
      (${later}, 'sum_two_numbers', '{}', ${new Date(cutover + 3_600_000).toISOString()}::timestamptz)`;
    expect(await partitionOf(later)).toBe(weekName(cutover));
    expect((await store.get(later))?.id).toBe(later);
    // Steps before their switch: this release's upsert (on the new key: 0041's index) finds an old
    // step by its '-infinity' key, a completed one keeps its first result; the release before's
    // upsert (on the old key) still works beside it.
    const singletonAt = (await store.get(old.singleton ?? ''))?.createdAt ?? new Date(0);
    const first = { taskId: old.singleton ?? '', taskCreatedAt: singletonAt, seq: 0, startedAt: new Date() };
    expect(
      (await store.steps.record({ ...first, stepId: 'a', status: 'completed', output: 'again' })).output,
    ).toBe('first');
    await store.steps.record({ ...first, stepId: 'b', seq: 1, status: 'completed', output: 2 });
    await sql()`insert into task_steps (task_id, step_id, seq, status, output, started_at, finished_at)
      values (${old.singleton ?? ''}, 'c', 2, 'completed', '3', now(), now())
      on conflict (task_id, step_id) do update set status = excluded.status where task_steps.status <> 'completed'`;
    expect(
      (await store.steps.list(old.singleton ?? '', singletonAt)).map((r) => [r.stepId, r.status]),
    ).toEqual([
      ['a', 'completed'],
      ['b', 'completed'],
      ['c', 'completed'],
    ]);
    // The switch: not before the cutover; after it (at a process's start, migrateDatabase), once.
    // The old table becomes the legacy partition up to the Monday after the switch, no index built
    // (its primary key is 0041's index, same oid), its range checks gone; the weeks after it are
    // made with the tasks' weeks' bounds.
    const partitions = new TaskPartitions(sql());
    expect(await partitions.partitionStepsWhenDue()).toBe(false);
    const stepCutover = weekStart(Date.now()) + 2 * WEEK;
    const switchAt = stepCutover + 24 * 3600 * 1000;
    expect(await partitions.partitionStepsWhenDue(switchAt)).toBe(true);
    expect(await partitions.partitionStepsWhenDue(switchAt)).toBe(false);
    await partitions.makeAhead(4, switchAt);
    const steps = await partitions.list('task_steps');
    expect(steps[0]).toEqual({
      name: 'task_steps_legacy',
      from: null,
      to: new Date(stepCutover + WEEK),
      detachPending: false,
    });
    const weeks = await partitions.list();
    expect(steps.length).toBeGreaterThan(4);
    for (const week of steps.slice(1)) {
      const twin = weeks.find((p) => p.name === week.name.replace(/^task_steps/, 'tasks'));
      expect([week.from, week.to]).toEqual([twin?.from, twin?.to]);
    }
    expect(await indexOids('task_steps_legacy')).toEqual({ task_steps_legacy_pkey: stepKeyIndex });
    const checks =
      await sql()`select conname from pg_constraint where conrelid = 'task_steps_legacy'::regclass and contype = 'c'`;
    expect(checks.map((c) => c.conname)).toEqual(['task_steps_status_check']);
    // After it: a task of the cutover's week has its steps under its created_at (in the legacy
    // partition, up to its end), one of the week after in that week's partition.
    const placedAt = async (at: number) => {
      const id = uuidv7(at);
      await sql()`insert into tasks (id, name, input, created_at) values
        (${id}, 'sum_two_numbers', '{}', ${new Date(at).toISOString()}::timestamptz)`;
      await store.steps.record({
        taskId: id,
        taskCreatedAt: new Date(at),
        stepId: 'a',
        seq: 0,
        status: 'completed',
        output: 1,
        startedAt: new Date(),
      });
      return id;
    };
    const soon = await placedAt(stepCutover + 60_000);
    const nextWeek = await placedAt(stepCutover + WEEK + 60_000);
    await store.steps.record({ ...first, stepId: 'd', seq: 3, status: 'completed', output: 4 });
    const placed = await sql()`select task_id::text, tableoid::regclass::text as part,
        (extract(epoch from task_created_at) * 1000)::float8 as at
      from task_steps order by part, task_created_at, step_id`;
    expect(placed.map((r) => [r.task_id, r.part, r.at])).toEqual([
      ...['a', 'b', 'c', 'd'].map(() => [old.singleton, 'task_steps_legacy', Number.NEGATIVE_INFINITY]),
      [soon, 'task_steps_legacy', stepCutover + 60_000],
      [nextWeek, weekName(stepCutover + WEEK, 'task_steps'), stepCutover + WEEK + 60_000],
    ]);
    // Retention deletes finished rows of the old table as before.
    expect(await store.pruneFinished(new Date(Date.now() + 60_000), 100)).toBeGreaterThanOrEqual(3);
    expect(await store.get(old.completed ?? '')).toBeUndefined();
  });

  it('finds a UUIDv7 parent by its time, and cancels its children when it fails', async () => {
    const parent = await inserted({ id: uuidv7() });
    await store.claim(parent, 'w1', 1);
    const children = [
      await inserted({ id: uuidv7(), parentId: parent }),
      await inserted({ id: uuidv7(), parentId: parent }),
    ];
    await store.claim(children[0] ?? '', 'w1', 1);
    await sql()`update tasks set status = 'WAITING', waiting_for = '{"kind":"children"}', version = version + 1
      where id = ${parent}`;
    await store.complete(children[0] ?? '', 1);
    expect((await store.get(parent))?.status).toBe('WAITING'); // one child left
    await store.claim(children[1] ?? '', 'w1', 1);
    await store.complete(children[1] ?? '', 2);
    expect((await store.get(parent))?.status).toBe('PENDING');
    // A failing parent cancels its PENDING child.
    await store.claim(parent, 'w1', 2);
    const orphan = await inserted({ id: uuidv7(), parentId: parent });
    await store.fail({
      id: parent,
      error: { message: 'boom', name: 'Error', code: 'HANDLER_ERROR' },
      cancelled: { message: 'cancelled', name: 'CancelledError', code: 'CANCELLED' },
      final: true,
    });
    expect((await store.get(orphan))?.status).toBe('CANCELLED');
  });
});
