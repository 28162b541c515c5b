/**
 * The keys of a submission, in the database: the concurrency key (the tenant's by default), the
 * singleton key (one unfinished task per key) and the debounce key (one PENDING task per key, moved
 * by each submission), each per tenant. The races are run two ways: from one store (its batcher
 * puts them in one statement) and from 20 stores on connections of their own (20 statements
 * racing in PostgreSQL, as 20 servers would).
 */
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbClient, migrateDatabase, type TaskInsert, TaskStore } from '../src/index.ts';

const RACERS = 20;

let env: TestEnv;
let client: DbClient;
let store: TaskStore;
/** Stores of their own, one connection each. */
const racers: { client: DbClient; store: TaskStore }[] = [];

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl);
  client = createDb(env.databaseUrl, { max: 5 });
  store = new TaskStore(client);
  for (let i = 0; i < RACERS; i++) {
    const own = createDb(env.databaseUrl, { max: 1 });
    racers.push({ client: own, store: new TaskStore(own) });
  }
});

afterAll(async () => {
  await Promise.all(racers.map((r) => r.client.close()));
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

/** Ends a RUNNING task's attempt with an error: its last (`final`), or one a retry follows. */
const failAttempt = (id: string, final: boolean) =>
  store.fail({
    id,
    error: { message: 'boom', name: 'Error', code: 'HANDLER_ERROR' },
    cancelled: { message: 'cancelled', name: 'CancelledError', code: 'CANCELLED' },
    final,
  });

/** Each submission from its own store (its own connection), all at once. */
const race = (make: (i: number) => TaskInsert) => Promise.all(racers.map((r, i) => r.store.insert(make(i))));

const count = async (where: string) =>
  Number((await client.sql.unsafe(`select count(*)::int as n from tasks where ${where}`))[0]?.n);

describe('the concurrency key', () => {
  it("is the tenant's when none is given, else the one given", async () => {
    const { row: mine } = await store.insert(task({ tenantId: 'acme' }));
    expect(mine.concurrencyKey).toBe('acme');
    const { row: given } = await store.insert(task({ tenantId: 'acme', concurrencyKey: 'customer-7' }));
    expect(given.concurrencyKey).toBe('customer-7');
    const { row: debounced } = await store.insert(
      task({ tenantId: 'acme', debounceKey: `d-${randomUUID()}`, debounceDelayMs: 10 }),
    );
    expect(debounced.concurrencyKey).toBe('acme');
  });
});

describe('the singleton key', () => {
  for (const how of ['one store (one statement)', '20 stores (20 statements)'] as const) {
    it(`answers ${RACERS} racing submissions with one task, from ${how}`, async () => {
      const key = `s-${randomUUID()}`;
      const make = (i: number) => task({ tenantId: 'acme', singletonKey: key, input: { a: i, b: 0 } });
      const answers =
        how === 'one store (one statement)'
          ? await Promise.all(Array.from({ length: RACERS }, (_, i) => store.insert(make(i))))
          : await race(make);
      expect(new Set(answers.map((a) => a.row.id)).size).toBe(1);
      expect(answers.filter((a) => a.created)).toHaveLength(1);
      expect(answers.filter((a) => a.matched === 'singleton')).toHaveLength(RACERS - 1);
      expect(await count(`singleton_key = '${key}'`)).toBe(1);
    });
  }

  it('holds while the task is PENDING or RUNNING, and is free again once it finished', async () => {
    const key = `s-${randomUUID()}`;
    const first = await store.insert(task({ singletonKey: key }));
    await store.claim(first.row.id, 'w1', 1);
    const whileRunning = await store.insert(task({ singletonKey: key }));
    expect(whileRunning).toMatchObject({ created: false, matched: 'singleton' });
    expect(whileRunning.row).toMatchObject({ id: first.row.id, status: 'RUNNING' });
    await store.complete(first.row.id, 3);
    const after = await store.insert(task({ singletonKey: key }));
    expect(after.created).toBe(true);
    expect(after.row.id).not.toBe(first.row.id);
  });

  it('answers an idempotent replay as one, before the singleton', async () => {
    const key = `s-${randomUUID()}`;
    const idem = `i-${randomUUID()}`;
    const first = await store.insert(task({ singletonKey: key, idempotencyKey: idem }));
    const replay = await store.insert(task({ singletonKey: key, idempotencyKey: idem }));
    expect(replay).toMatchObject({ created: false, matched: 'idempotency', row: { id: first.row.id } });
    const other = await store.insert(task({ singletonKey: key, idempotencyKey: `i-${randomUUID()}` }));
    expect(other).toMatchObject({ created: false, matched: 'singleton', row: { id: first.row.id } });
  });
});

describe('the debounce key', () => {
  for (const how of ['one store (one statement)', '20 stores (20 statements)'] as const) {
    it(`collapses ${RACERS} racing submissions into one PENDING task with the last input, from ${how}`, async () => {
      const key = `d-${randomUUID()}`;
      const make = (i: number) =>
        task({ tenantId: 'acme', debounceKey: key, debounceDelayMs: 1000, input: { a: i, b: 0 } });
      const answers =
        how === 'one store (one statement)'
          ? await Promise.all(Array.from({ length: RACERS }, (_, i) => store.insert(make(i))))
          : await race(make);
      const ids = new Set(answers.map((a) => a.row.id));
      expect(ids.size).toBe(1);
      expect(answers.filter((a) => a.created)).toHaveLength(1);
      expect(answers.filter((a) => a.matched === 'debounce')).toHaveLength(RACERS - 1);
      const [id] = [...ids];
      const stored = await store.get(id as string);
      // The last write to commit is the one with the highest version: its input is the task's.
      const last = answers.reduce((a, b) => (b.row.version > a.row.version ? b : a));
      expect(stored?.input).toEqual(last.row.input);
      expect(stored?.version).toBe(last.row.version);
      if (how === 'one store (one statement)') expect(stored?.input).toEqual({ a: RACERS - 1, b: 0 });
      else expect(stored?.version).toBe(RACERS - 1); // one insert, then 19 moves
      expect(stored?.status).toBe('PENDING');
      expect(await count(`debounce_key = '${key}'`)).toBe(1);
    });
  }

  it('moves the start to delay after the last submission, and keeps the first one’s id', async () => {
    const key = `d-${randomUUID()}`;
    const first = await store.insert(
      task({ debounceKey: key, debounceDelayMs: 5000, input: { a: 1, b: 0 } }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const second = await store.insert(
      task({ debounceKey: key, debounceDelayMs: 5000, input: { a: 2, b: 0 } }),
    );
    expect(second).toMatchObject({ created: false, matched: 'debounce', row: { id: first.row.id } });
    expect(second.row.input).toEqual({ a: 2, b: 0 });
    const moved = (second.row.runAfter?.getTime() ?? 0) - (first.row.runAfter?.getTime() ?? 0);
    expect(moved).toBeGreaterThanOrEqual(250);
    expect(moved).toBeLessThan(2000);
    expect(second.row.version).toBe(first.row.version + 1);
  });

  it('does not start before its run_after: the claim refuses it until then', async () => {
    const key = `d-${randomUUID()}`;
    const { row } = await store.insert(task({ debounceKey: key, debounceDelayMs: 400 }));
    expect(await store.claim(row.id, 'w1', 1)).toBeUndefined();
    expect((await store.get(row.id))?.status).toBe('PENDING');
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await store.claim(row.id, 'w1', 1))?.status).toBe('RUNNING');
  });

  it('opens a new task once the held one started', async () => {
    const key = `d-${randomUUID()}`;
    const { row } = await store.insert(task({ debounceKey: key, debounceDelayMs: 0 }));
    await store.claim(row.id, 'w1', 1);
    const next = await store.insert(task({ debounceKey: key, debounceDelayMs: 0 }));
    expect(next.created).toBe(true);
    expect(next.row.id).not.toBe(row.id);
  });

  it('writes nothing into a held task of another type, and answers with it', async () => {
    const key = `d-${randomUUID()}`;
    const { row } = await store.insert(task({ debounceKey: key, debounceDelayMs: 1000 }));
    const other = await store.insert(
      task({ name: 'find_longest_consecutive_letters', input: { string: 'aa' }, debounceKey: key }),
    );
    expect(other).toMatchObject({
      created: false,
      matched: 'debounce',
      row: { id: row.id, name: 'sum_two_numbers' },
    });
    expect((await store.get(row.id))?.version).toBe(row.version);
  });
});

describe('task_keys (migration 0035)', () => {
  /**
   * What task_keys must hold, checked against the tasks: each row's holder exists (found by its id
   * and created_at) and carries the key (a singleton's holder unfinished, a debounce's PENDING), and
   * every unfinished task with a singleton key holds it. Returns the broken rows, described.
   */
  const outOfStep = async () =>
    client.sql<{ what: string }[]>`
      select 'row ' || k.kind || ' ' || k.key || ' of ' || k.task_id as what
      from task_keys k left join tasks t on t.id = k.task_id and t.created_at = k.task_created_at
      where t.id is null or t.owner_id <> k.owner_id
         or (k.kind = 'idempotency' and t.idempotency_key is distinct from k.key)
         or (k.kind = 'singleton' and (t.singleton_key is distinct from k.key or t.finished_at is not null))
         or (k.kind = 'debounce' and (t.debounce_key is distinct from k.key or t.status <> 'PENDING'))
      union all
      select 'unheld singleton ' || t.singleton_key || ' of ' || t.id from tasks t
      where t.singleton_key is not null and t.finished_at is null
        and not exists (select 1 from task_keys k where k.task_id = t.id and k.kind = 'singleton')`;

  afterAll(async () => {
    // After every test of this file: the keys never disagree with the tasks.
    expect(await outOfStep()).toEqual([]);
  });

  it('a debounced task whose attempt fails goes back to PENDING while a newer one holds the key; submissions join the newer one', async () => {
    const key = `d-${randomUUID()}`;
    const { row: first } = await store.insert(task({ debounceKey: key, debounceDelayMs: 0, maxAttempts: 2 }));
    await store.claim(first.id, 'w1', 1);
    const { row: second } = await store.insert(task({ debounceKey: key, debounceDelayMs: 1000 }));
    expect(second.id).not.toBe(first.id);
    // Before 0035, tasks_owner_debounce_idx refused this (two PENDING tasks with one key).
    const retried = await failAttempt(first.id, false);
    expect(retried?.status).toBe('PENDING');
    const joined = await store.insert(
      task({ debounceKey: key, debounceDelayMs: 1000, input: { a: 9, b: 9 } }),
    );
    expect(joined).toMatchObject({
      created: false,
      matched: 'debounce',
      row: { id: second.id, input: { a: 9, b: 9 } },
    });
    expect((await store.get(first.id))?.input).toEqual({ a: 1, b: 2 });
    expect(await outOfStep()).toEqual([]);
  });

  it('a retry takes its singleton key again, and is refused while another task holds it', async () => {
    const key = `s-${randomUUID()}`;
    const { row: first } = await store.insert(task({ singletonKey: key, tenantId: 'acme' }));
    await store.claim(first.id, 'w1', 1);
    await failAttempt(first.id, true);
    const { row: second, created } = await store.insert(task({ singletonKey: key, tenantId: 'acme' }));
    expect(created).toBe(true);
    // Held by the second: the retry's guard refuses it, nothing changes.
    expect(await store.retry(first.id, 'acme')).toBeUndefined();
    expect(await store.keyHolder('acme', 'singleton', key)).toBe(second.id);
    expect((await store.get(first.id))?.status).toBe('FAILED');
    // Its write past the guard (a racing retry) is refused by the key itself.
    await expect(
      client.sql`update tasks set status = 'PENDING', finished_at = null where id = ${first.id}`,
    ).rejects.toMatchObject({ code: '23505' });
    await store.claim(second.id, 'w1', 1);
    await store.complete(second.id, 3);
    const again = await store.retry(first.id, 'acme');
    expect(again?.status).toBe('PENDING');
    expect(await store.keyHolder('acme', 'singleton', key)).toBe(first.id);
    const third = await store.insert(task({ singletonKey: key, tenantId: 'acme' }));
    expect(third).toMatchObject({ created: false, matched: 'singleton', row: { id: first.id } });
    expect(await outOfStep()).toEqual([]);
  });

  it('a bulk retry of tasks sharing a singleton key retries the newest, and the chunk goes through', async () => {
    const key = `s-${randomUUID()}`;
    const failedTask = async (fields: Partial<TaskInsert>) => {
      const { row } = await store.insert(task({ tenantId: 'bulk', ...fields }));
      await store.claim(row.id, 'w1', 1);
      await failAttempt(row.id, true);
      return row.id;
    };
    const made: string[] = [];
    for (let i = 0; i < 3; i++) made.push(await failedTask({ singletonKey: key }));
    const plain = await failedTask({});
    // Before: a unique violation, the whole chunk refused.
    const retried = await client.db.transaction((tx) => store.bulk.retry(tx, 'bulk', [...made, plain]));
    expect(retried.map((r) => r.id).sort()).toEqual([made[2], plain].sort());
    expect(await store.keyHolder('bulk', 'singleton', key)).toBe(made[2]);
    // The next chunk with the others: the key is held, they stay as they are.
    expect(await client.db.transaction((tx) => store.bulk.retry(tx, 'bulk', made.slice(0, 2)))).toEqual([]);
    expect(await outOfStep()).toEqual([]);
  });

  it("an expired idempotency key is free again: its row goes with the old task's key", async () => {
    const key = `i-${randomUUID()}`;
    const { row: old } = await store.insert(task({ idempotencyKey: key }));
    await client.sql`update tasks set created_at = created_at - interval '2 days' where id = ${old.id}`;
    await client.sql`update task_keys set task_created_at = task_created_at - interval '2 days' where task_id = ${old.id}`;
    const fresh = await store.insert(task({ idempotencyKey: key }));
    expect(fresh.created).toBe(true);
    expect(await store.keyHolder('default', 'idempotency', key)).toBe(fresh.row.id);
    const [detached] = await client.sql`select idempotency_key from tasks where id = ${old.id}`;
    expect(detached?.idempotency_key).toBeNull();
  });

  it("retention deletes a task's keys with it", async () => {
    const key = `i-${randomUUID()}`;
    const { row } = await store.insert(task({ idempotencyKey: key, tenantId: 'prune' }));
    await store.claim(row.id, 'w1', 1);
    await store.complete(row.id, 3);
    await client.sql`update tasks set finished_at = now() - interval '40 days' where id = ${row.id}`;
    while ((await store.pruneFinished(new Date(Date.now() - 30 * 86_400_000), 1000)) === 1000);
    expect(await store.keyHolder('prune', 'idempotency', key)).toBeUndefined();
    expect((await store.insert(task({ idempotencyKey: key, tenantId: 'prune' }))).created).toBe(true);
  });
});

describe('keys are per tenant', () => {
  it("never answers with another tenant's task, for any of the keys", async () => {
    const key = `k-${randomUUID()}`;
    const tenants = ['acme', 'globex'];
    const singles = await Promise.all(
      tenants.map((tenantId) => store.insert(task({ tenantId, singletonKey: key }))),
    );
    const debounced = await Promise.all(
      tenants.map((tenantId) => store.insert(task({ tenantId, debounceKey: key, debounceDelayMs: 1000 }))),
    );
    const idem = await Promise.all(
      tenants.map((tenantId) => store.insert(task({ tenantId, idempotencyKey: key }))),
    );
    for (const answers of [singles, debounced, idem]) {
      expect(answers.every((a) => a.created)).toBe(true);
      expect(answers.map((a) => a.row.tenantId)).toEqual(tenants);
      expect(new Set(answers.map((a) => a.row.id)).size).toBe(2);
    }
    // The same key again, per tenant: each gets its own.
    const again = await race((i) => task({ tenantId: tenants[i % 2], singletonKey: key }));
    for (const answer of again) {
      expect(answer.matched).toBe('singleton');
      expect(answer.row.id).toBe(singles[tenants.indexOf(answer.row.tenantId)]?.row.id);
    }
  });
});

describe('batches racing on the same keys', () => {
  it('never deadlock: two stores inserting one batch of keys in opposite orders, many times', async () => {
    const [a, b] = [racers[0], racers[1]];
    if (!a || !b) throw new Error('no racers');
    for (let round = 0; round < 20; round++) {
      const keys = Array.from({ length: 8 }, (_, i) => `dl-${round}-${i}`);
      const batch = (store: TaskStore, order: string[]) =>
        Promise.all(order.map((key) => store.insert(task({ singletonKey: key, tenantId: 'deadlock' }))));
      const [first, second] = await Promise.all([batch(a.store, keys), batch(b.store, [...keys].reverse())]);
      // Every submission answered; one task per key.
      expect(first.length + second.length).toBe(16);
      expect(await count(`owner_id = 'deadlock' and singleton_key like 'dl-${round}-%'`)).toBe(8);
    }
  });

  it('answers the rows a batch committed even when a later round of that batch fails', async () => {
    const { ItemFailure } = await import('../src/index.ts');
    // Batcher's per-item failure: one item rejects, the others of the same batch resolve.
    const { Batcher } = await import('../src/index.ts');
    const batcher = new Batcher<number, number>(
      async (items) => items.map((n) => (n === 2 ? new ItemFailure(new Error('two')) : n * 10)),
      (n) => String(n),
      { maxSize: 10 },
    );
    const results = await Promise.allSettled([1, 2, 3].map((n) => batcher.add(n)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});
