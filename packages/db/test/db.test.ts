import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDb,
  type DbClient,
  listenTaskChanges,
  migrateDatabase,
  parseTaskChanges,
  TASK_EVENTS_CHANNEL,
  type TaskChange,
  TaskStore,
  TenantWatchers,
} from '../src/index.ts';

let env: TestEnv;
let client: DbClient;
let store: TaskStore;

beforeAll(async () => {
  env = createTestEnv();
  // Five processes starting at once against a database that does not exist yet.
  await Promise.all(Array.from({ length: 5 }, () => migrateDatabase(env.databaseUrl)));
  client = createDb(env.databaseUrl, { max: 5 });
  store = new TaskStore(client);
});

afterAll(async () => {
  await client?.close();
  await env?.cleanup();
});

const cancelled = { message: 'the task was cancelled', name: 'CancelledError', code: 'CANCELLED' };
const expiredError = { message: 'not started within its ttl', name: 'ExpiredError', code: 'EXPIRED' };

const newTask = async (input: unknown = { a: 1, b: 2 }) =>
  (await store.insert({ id: randomUUID(), name: 'sum_two_numbers', input, maxAttempts: 3 })).row;

describe('task change notifications', () => {
  it('announces every change on commit, never a rolled-back one, with the row as it is after it', async () => {
    const heard: TaskChange[] = [];
    const listener = await listenTaskChanges(
      client.sql,
      (c) => heard.push(c),
      () => {},
    );
    try {
      const task = await newTask();
      await store.claim(task.id, 'w1', 1);
      await store.complete(task.id, 7);
      await client.sql
        .begin(async (tx) => {
          await tx`update tasks set version = version + 1 where id = ${task.id}`;
          throw new Error('roll back');
        })
        .catch(() => {});
      const big = await newTask({ text: 'x'.repeat(20_000) });
      await store.claim(big.id, 'w1', 1);
      await store.complete(big.id, 'y'.repeat(10_000));
      const deadline = Date.now() + 5000;
      while (
        heard.filter((c) => (c.truncated ? c.id : c.row.id) === big.id).length < 3 &&
        Date.now() < deadline
      )
        await new Promise((r) => setTimeout(r, 20));
      // A new task is announced by its key (0030_announce_per_statement), a change with its row.
      const mine = heard.filter((c) => (c.truncated ? c.id : c.row.id) === task.id);
      expect(mine.map((c) => [c.truncated, c.truncated ? c.status : c.row.status])).toEqual([
        [true, 'PENDING'],
        [false, 'RUNNING'],
        [false, 'COMPLETED'],
      ]);
      const done = mine.at(-1);
      expect(done?.truncated === false && done.row.output).toBe(7);
      expect(done?.truncated === false && done.row.finishedAt).toBeInstanceOf(Date);
      const bigOnes = heard.filter((c) => (c.truncated ? c.id : c.row.id) === big.id);
      expect(bigOnes.map((c) => c.truncated)).toEqual([true, false, true]);
      expect(bigOnes.at(-1)).toMatchObject({ truncated: true, status: 'COMPLETED', version: 2 });
    } finally {
      await listener.close();
    }
  });
});

describe('new tasks announced per statement', () => {
  it('announces 1,000 tasks inserted in one statement in a few notifications under 8,000 bytes, each task once', async () => {
    const payloads: string[] = [];
    const { unlisten } = await client.sql.listen(TASK_EVENTS_CHANNEL, (payload) => payloads.push(payload));
    try {
      // Long tenant and type names: the packing must hold with the longest keys, not only short ones.
      const tenant = `t-${'x'.repeat(60)}`;
      const name = `n-${'y'.repeat(60)}`;
      const ids = Array.from({ length: 1000 }, () => randomUUID());
      await client.sql`insert into tasks (id, owner_id, name, input, concurrency_key)
        select id, ${tenant}, ${name}, '{}'::jsonb, ${tenant} from unnest(${ids}::uuid[]) as id`;
      const heard = () =>
        payloads.flatMap((p) => parseTaskChanges(p)).filter((c) => c.truncated && c.tenantId === tenant);
      const deadline = Date.now() + 5000;
      while (heard().length < ids.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const changes = heard();
      expect(changes.map((c) => (c.truncated ? c.id : '')).sort()).toEqual([...ids].sort());
      expect(
        changes.every((c) => c.truncated && c.status === 'PENDING' && c.version === 0 && c.name === name),
      ).toBe(true);
      const mine = payloads.filter((p) => p.includes(tenant));
      expect(mine.length).toBeGreaterThan(1);
      expect(mine.length).toBeLessThan(100); // 1,000 before, one per row
      for (const p of mine) expect(Buffer.byteLength(p)).toBeLessThan(8000);
    } finally {
      await unlisten();
    }
  });
});

describe('tenant-wide watchers', () => {
  it("announce a watched tenant's new tasks whole, an unwatched one's by key, and a lease that ends stops it", async () => {
    const payloads: string[] = [];
    const { unlisten } = await client.sql.listen(TASK_EVENTS_CHANNEL, (payload) => payloads.push(payload));
    const watched = `w-${randomUUID()}`;
    const other = `o-${randomUUID()}`;
    const watchers = new TenantWatchers(client.sql, 'server-1', 30_000);
    const insert = async (tenant: string) => {
      const ids = [randomUUID(), randomUUID()];
      await client.sql`insert into tasks (id, owner_id, name, input, concurrency_key)
        select id, ${tenant}, 'sum_two_numbers', '{"a": 1}'::jsonb, ${tenant} from unnest(${ids}::uuid[]) as id`;
      return ids;
    };
    const heard = async (ids: string[]) => {
      const deadline = Date.now() + 5000;
      const find = () =>
        payloads
          .flatMap((p) => parseTaskChanges(p))
          .filter((c) => ids.includes(c.truncated ? c.id : c.row.id));
      while (find().length < ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return find();
    };
    try {
      await watchers.hold([watched]);
      const whole = await heard(await insert(watched));
      expect(whole).toHaveLength(2);
      for (const c of whole)
        expect(c.truncated === false && c.row.tenantId === watched && c.row.status).toBe('PENDING');
      const keys = await heard(await insert(other));
      expect(keys.map((c) => c.truncated)).toEqual([true, true]);
      await watchers.release(watched);
      expect((await heard(await insert(watched))).map((c) => c.truncated)).toEqual([true, true]);
      // A lease that ran out counts for nothing, and is cleaned away an hour later.
      await new TenantWatchers(client.sql, 'server-2', 1).hold([watched]);
      await new Promise((r) => setTimeout(r, 20));
      expect((await heard(await insert(watched))).map((c) => c.truncated)).toEqual([true, true]);
      await client.sql`update tasker_tenant_watchers set expires_at = now() - interval '2 hours' where tenant_id = ${watched}`;
      await watchers.hold([other]);
      expect(
        await client.sql`select 1 from tasker_tenant_watchers where tenant_id = ${watched}`,
      ).toHaveLength(0);
    } finally {
      await unlisten();
    }
  });
});

describe('migrations', () => {
  it('created the database and applied each migration once despite concurrent starts', async () => {
    const sql = postgres(env.databaseUrl, { max: 1 });
    try {
      const [{ count }] =
        (await sql`select count(*)::int as count from drizzle.__drizzle_migrations`) as unknown as [
          { count: number },
        ];
      const files = (await import('node:fs'))
        .readdirSync(new URL('../drizzle', import.meta.url))
        .filter((f) => f.endsWith('.sql'));
      expect(count).toBe(files.length);
      const indexes = await sql`select indexname from pg_indexes where tablename = 'tasks' order by 1`;
      expect(indexes.map((r) => r.indexname)).toEqual(
        expect.arrayContaining(['tasks_owner_created_idx', 'tasks_unfinished_idx', 'tasks_pkey']),
      );
      // Partitioned by created_at (0039): the table as it was is the first partition.
      const [kind] = await sql`select relkind from pg_class where oid = 'tasks'::regclass`;
      expect(kind?.relkind).toBe('p');
    } finally {
      await sql.end();
    }
  });

  it('is a no-op when run again', async () => {
    await expect(migrateDatabase(env.databaseUrl)).resolves.toBeUndefined();
  });
});

describe('TaskStore', () => {
  it('starts PENDING and walks RUNNING → COMPLETED, keeping a result of 0 as 0', async () => {
    const task = await newTask();
    expect(task.status).toBe('PENDING');
    expect(task.attempts).toBe(0);
    const running = await store.claim(task.id, 'w1', 1);
    expect(running?.status).toBe('RUNNING');
    expect(running?.attempts).toBe(1);
    expect(running?.startedAt).toBeInstanceOf(Date);
    const done = await store.complete(task.id, 0);
    expect(done?.status).toBe('COMPLETED');
    expect(done?.output).toBe(0);
    expect((await store.get(task.id))?.output).toBe(0);
    expect(done?.finishedAt).toBeInstanceOf(Date);
  });

  it('lets exactly one of many racing completions win, and never re-opens a finished task', async () => {
    const task = await newTask();
    await store.claim(task.id, 'w1', 1);
    await store.claim(task.id, 'w2', 1); // a re-delivery after a crash may claim it again
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.complete(task.id, i)));
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toHaveLength(1);
    expect((await store.get(task.id))?.output).toBe(winners[0]?.output);
    expect(await store.claim(task.id, 'w3', 2)).toBeUndefined();
    expect(
      await store.fail({
        id: task.id,
        error: { message: 'x', name: 'Error', code: 'HANDLER_ERROR' },
        cancelled,
        final: true,
      }),
    ).toBeUndefined();
  });

  it('keeps every failed attempt and fails only on the final one', async () => {
    const task = await newTask();
    await store.claim(task.id, 'w1', 1);
    const retry = await store.fail({
      id: task.id,
      error: { message: 'first', name: 'Error', code: 'HANDLER_ERROR', attempt: 1 },
      cancelled,
      final: false,
    });
    expect(retry?.status).toBe('PENDING');
    expect(retry?.error).toBeNull();
    await store.claim(task.id, 'w1', 2);
    const failed = await store.fail({
      id: task.id,
      error: { message: 'second', name: 'Error', code: 'TIMEOUT', attempt: 2 },
      cancelled,
      final: true,
    });
    expect(failed?.status).toBe('FAILED');
    expect(failed?.error?.message).toBe('second');
    expect(failed?.attemptErrors.map((e) => e.message)).toEqual(['first', 'second']);
    expect(failed?.attempts).toBe(2);
  });

  it('gives a running attempt back without counting it', async () => {
    const task = await newTask();
    await store.claim(task.id, 'w1', 1);
    const released = await store.release(task.id);
    expect(released?.status).toBe('PENDING');
    expect(released?.attempts).toBe(0);
  });

  it('answers an idempotency key with its first task, even to racing inserts, until the window ends', async () => {
    const key = `key-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        store.insert({
          id: randomUUID(),
          name: 'sum_two_numbers',
          input: { a: 1, b: 1 },
          idempotencyKey: key,
        }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.row.id)).size).toBe(1);
    const later = await store.insert({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: {},
      idempotencyKey: key,
    });
    expect(later).toMatchObject({ created: false, row: { id: results[0]?.row.id } });
    // Past the window the key is free again.
    const shortWindow = new TaskStore(client, { idempotencyWindowSeconds: 0 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const fresh = await shortWindow.insert({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: {},
      idempotencyKey: key,
    });
    expect(fresh.created).toBe(true);
  });

  it('counts a repeated claim of the same delivery once (a lost answer costs no attempt)', async () => {
    const task = await newTask();
    await store.claim(task.id, 'w1', 1);
    const again = await store.claim(task.id, 'w1', 1);
    expect(again?.attempts).toBe(1);
  });

  it('never completes a task whose cancellation was recorded first; it ends CANCELLED', async () => {
    const task = await newTask();
    await store.claim(task.id, 'w1', 1);
    expect((await store.requestCancel(task.id))?.cancelRequestedAt).toBeInstanceOf(Date);
    expect(await store.cancelRequested([task.id, randomUUID()])).toEqual([task.id]);
    expect(await store.complete(task.id, 3)).toBeUndefined();
    const ended = await store.cancelRunning(task.id, cancelled);
    expect(ended?.status).toBe('CANCELLED');
    expect(ended?.output).toBeNull();
  });

  // Issue 7, fault 6: releasing an expired idempotency key touched every owner's rows with that key,
  // and did not move version/updated_at (so watchers and the sweeper missed the change).
  it('frees an expired idempotency key of this owner only, as a versioned change', async () => {
    const key = `shared-${randomUUID()}`;
    const insert = (tenantId: string) =>
      store.insert({ id: randomUUID(), tenantId, name: 'sum_two_numbers', input: {}, idempotencyKey: key });
    const a = (await insert('tenant-a')).row;
    const b = (await insert('tenant-b')).row;
    // Made two days ago: the task and its key (task_keys names its holder by its created_at).
    await client.sql`update tasks set created_at = now() - interval '2 days' where id in (${a.id}, ${b.id})`;
    await client.sql`update task_keys set task_created_at = now() - interval '2 days' where task_id in (${a.id}, ${b.id})`;
    const again = await insert('tenant-a');
    expect(again.created).toBe(true);
    const [oldA, oldB] = [await store.get(a.id), await store.get(b.id)];
    expect(oldA?.idempotencyKey).toBeNull();
    expect(oldA?.version).toBe(a.version + 1);
    expect(oldA?.updatedAt.getTime()).toBeGreaterThan(a.updatedAt.getTime());
    // tenant-b's key is tenant-b's: tenant-a's submission must not touch it.
    expect(oldB?.idempotencyKey).toBe(key);
    expect(oldB?.version).toBe(b.version);
  });

  it('prunes finished tasks past retention, in batches, and nothing else', async () => {
    const old = await Promise.all(Array.from({ length: 5 }, () => newTask()));
    for (const task of old) {
      await store.claim(task.id, 'w', 1);
      await store.complete(task.id, 1);
    }
    const unfinished = await newTask();
    const recent = await newTask();
    await store.claim(recent.id, 'w', 1);
    await store.complete(recent.id, 2);
    await client.sql`update tasks set finished_at = now() - interval '40 days' where id = any(${old.map((t) => t.id)}::uuid[])`;
    await client.sql`update tasks set created_at = now() - interval '40 days' where id = ${unfinished.id}`;
    const cutoff = new Date(Date.now() - 30 * 24 * 3600 * 1000);
    expect(await store.pruneFinished(cutoff, 3)).toBe(3);
    expect(await store.pruneFinished(cutoff, 3)).toBe(2);
    expect(await store.pruneFinished(cutoff, 3)).toBe(0);
    for (const task of old) expect(await store.get(task.id)).toBeUndefined();
    expect(await store.get(unfinished.id)).toBeDefined();
    expect(await store.get(recent.id)).toBeDefined();
  });

  it('pages through stale unfinished rows by (updated_at, id) without skipping or repeating', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add((await newTask()).id);
    // Only tasks handed to the queue can miss a job: one left waiting for its turn is not stale.
    const waiting = (await newTask()).id;
    expect(await store.dispatch.dispatch([...ids])).toEqual(ids);
    const seen: string[] = [];
    let cursor: { updatedAt: Date; id: string } | undefined;
    for (;;) {
      const page = await store.findStale(new Date(Date.now() + 1000), 3, cursor);
      if (page.length === 0) break;
      seen.push(...page.map((r) => r.id));
      const last = page.at(-1);
      if (last) cursor = { updatedAt: last.updatedAt, id: last.id };
    }
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
    expect(seen).not.toContain(waiting);
    expect(await store.findStale(new Date(0), 10)).toEqual([]);
  });
});

describe('the state machine in SQL', () => {
  it('ends a retryable failure after a cancel request CANCELLED in one commit: watchers never see PENDING', async () => {
    const heard: TaskChange[] = [];
    const listener = await listenTaskChanges(
      client.sql,
      (c) => heard.push(c),
      () => {},
    );
    try {
      const task = await newTask();
      await store.claim(task.id, 'w1', 1);
      await store.requestCancel(task.id);
      const attemptError = { message: 'boom', name: 'Error', code: 'HANDLER_ERROR', attempt: 1 };
      const ended = await store.fail({ id: task.id, error: attemptError, cancelled, final: false });
      expect(ended?.status).toBe('CANCELLED');
      expect(ended?.error?.code).toBe('CANCELLED');
      expect(ended?.attemptErrors.map((e) => e.message)).toEqual(['boom']);
      expect(ended?.finishedAt).toBeInstanceOf(Date);
      // A final failure with a cancel asked for ends CANCELLED too: the cancel wins, as over a result.
      const other = await newTask();
      await store.claim(other.id, 'w1', 1);
      await store.requestCancel(other.id);
      expect((await store.fail({ id: other.id, error: attemptError, cancelled, final: true }))?.status).toBe(
        'CANCELLED',
      );
      const deadline = Date.now() + 5000;
      const statuses = () =>
        heard
          .filter((c) => (c.truncated ? c.id : c.row.id) === task.id)
          .map((c) => (c.truncated ? c.status : c.row.status));
      while (statuses().at(-1) !== 'CANCELLED' && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(statuses()).toEqual(['PENDING', 'RUNNING', 'RUNNING', 'CANCELLED']);
    } finally {
      await listener.close();
    }
  });

  it('expires a PENDING task past its ttl (never one that started, nor one without a ttl), and a claim refuses it', async () => {
    const insert = (ttlMs: number | null) =>
      store.insert({ id: randomUUID(), name: 'sum_two_numbers', input: {}, ttlMs }).then((r) => r.row);
    const short = await insert(100);
    const long = await insert(60_000);
    const none = await insert(null);
    const started = await insert(100);
    expect(short.expiresAt?.getTime()).toBeGreaterThan(short.createdAt.getTime() + 90);
    expect(none.expiresAt).toBeNull();
    await store.claim(started.id, 'w1', 1);
    await new Promise((r) => setTimeout(r, 150));
    expect(await store.claim(short.id, 'w1', 1)).toBeUndefined();
    const expired = await store.expireDue(100, expiredError);
    const ids = expired.map((r) => r.id);
    expect(ids).toContain(short.id);
    for (const id of [long.id, none.id, started.id]) expect(ids).not.toContain(id);
    const row = await store.get(short.id);
    expect(row).toMatchObject({ status: 'EXPIRED', error: { code: 'EXPIRED' } });
    expect(row?.finishedAt).toBeInstanceOf(Date);
    // EXPIRED is terminal: nothing but a retry moves it, and the retry counts its ttl again.
    expect(await store.cancelPending(short.id, cancelled)).toBeUndefined();
    const retried = await store.retry(short.id);
    expect(retried?.status).toBe('PENDING');
    expect((retried?.expiresAt?.getTime() ?? 0) - (retried?.updatedAt.getTime() ?? 0)).toBe(100);
  });

  it('refuses, in the database itself, a row whose finished_at disagrees with its status', async () => {
    const task = await newTask();
    await expect(client.sql`update tasks set finished_at = now() where id = ${task.id}`).rejects.toThrow(
      /tasks_finished_check/,
    );
  });

  it('scopes tenant-guarded transitions to the tenant, and only those', async () => {
    const task = (
      await store.insert({ id: randomUUID(), tenantId: 'ta', name: 'sum_two_numbers', input: {} })
    ).row;
    expect(await store.cancelPending(task.id, cancelled, 'tb')).toBeUndefined();
    expect((await store.cancelPending(task.id, cancelled, 'ta'))?.status).toBe('CANCELLED');
    expect(await store.retry(task.id, 'tb')).toBeUndefined();
    expect((await store.retry(task.id))?.status).toBe('PENDING');
  });
});

describe('dispatch', () => {
  it("hands tasks out only on the session holding the leader's lock: another session marks nothing", async () => {
    const key = 424_242;
    const leader = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    const other = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const a = await newTask();
      const b = await newTask();
      const take = async (sql: postgres.Sql) =>
        (await sql<{ ok: boolean }[]>`select pg_try_advisory_lock(${key}) as ok`)[0]?.ok;
      expect(await take(leader)).toBe(true);
      expect(await take(other)).toBe(false);
      expect(await store.dispatch.dispatch([a.id], { sql: leader, lockKey: key })).toEqual(new Set([a.id]));
      expect(await store.dispatch.dispatch([b.id], { sql: other, lockKey: key })).toEqual(new Set());
      expect(await store.dispatch.dispatch([a.id], { sql: leader, lockKey: key })).toEqual(new Set()); // once
      const holding = await store.dispatch.holding();
      expect(holding.find((g) => g.tenantId === 'default')?.waiting).toBeGreaterThanOrEqual(1);
      // The leader's session ends: its lock with it, and the other session may lead.
      await leader.end();
      expect(await take(other)).toBe(true);
      expect(await store.dispatch.dispatch([b.id], { sql: other, lockKey: key })).toEqual(new Set([b.id]));
    } finally {
      await leader.end().catch(() => {});
      await other.end();
    }
  });
});
