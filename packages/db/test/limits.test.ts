/**
 * Limits in storage: LimitStore (set, clear, the tenants there are, counts) and an insert under
 * `max_queued` (queue-limit.ts): racing inserts from two pools, as from two servers, store exactly
 * the limit; a refused insert stores nothing and announces nothing; a replay is not refused.
 */
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiKeyStore,
  createDb,
  type DbClient,
  LimitStore,
  listenTaskChanges,
  migrateDatabase,
  QueueFullError,
  type TaskChange,
  TaskStore,
} from '../src/index.ts';

let env: TestEnv;
let one: DbClient;
let two: DbClient;
let limits: LimitStore;
let stores: TaskStore[];

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl);
  one = createDb(env.databaseUrl, { max: 5 });
  two = createDb(env.databaseUrl, { max: 5 });
  limits = new LimitStore(one.db);
  stores = [new TaskStore(one), new TaskStore(two)];
});

afterAll(async () => {
  await one?.close();
  await two?.close();
  await env?.cleanup();
});

const row = (tenantId: string, name = 'sum_two_numbers', extra: object = {}) => ({
  id: randomUUID(),
  tenantId,
  name,
  input: { a: 1, b: 2 },
  ...extra,
});

const pending = async (where: { tenant?: string; name?: string }) => {
  const [found] = await one.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where status = 'PENDING'
      and (${where.tenant ?? null}::text is null or owner_id = ${where.tenant ?? null})
      and (${where.name ?? null}::text is null or name = ${where.name ?? null})`;
  return found?.n ?? 0;
};

describe('LimitStore', () => {
  it('sets the fields given and leaves the others, clears, and lists the tenants with their counts', async () => {
    expect(await limits.getTenant('t1')).toBeUndefined();
    await limits.setTenant('t1', { maxRunning: 3, maxQueued: 10 });
    await limits.setTenant('t1', { startsPerMinute: 60, maxRunning: null });
    expect(await limits.getTenant('t1')).toMatchObject({
      maxRunning: null,
      maxQueued: 10,
      startsPerMinute: 60,
    });
    await limits.setType('sum_two_numbers', { maxRunningPerKey: 2 });
    expect(await limits.getType('sum_two_numbers')).toMatchObject({ maxRunningPerKey: 2, maxRunning: null });
    expect(await limits.clearType('sum_two_numbers')).toBe(true);
    expect(await limits.clearType('sum_two_numbers')).toBe(false);

    await new ApiKeyStore(one.db).create({ tenantId: 't0', name: 'k', scopes: ['tasks:read'] });
    for (const tenant of ['t2', 't2', 't3']) await stores[0]?.insert(row(tenant));
    await one.sql`update tasks set status = 'RUNNING', started_at = now(), attempts = 1
      where id = (select id from tasks where owner_id = 't2' limit 1)`;
    expect(await limits.listTenants(10)).toEqual(['t0', 't1', 't2', 't3']);
    expect(await limits.listTenants(2)).toEqual(['t0', 't1']);
    expect(await limits.listTenants(10, 't1')).toEqual(['t2', 't3']);
    expect(await limits.tenantExists('t3')).toBe(true);
    expect(await limits.tenantExists('t0')).toBe(true);
    expect(await limits.tenantExists('nobody')).toBe(false);
    const counts = await limits.countsOf(['t2', 't3', 'nobody']);
    expect(counts.get('t2')).toEqual({ running: 1, queued: 1 });
    expect(counts.get('t3')).toEqual({ running: 0, queued: 1 });
    expect(counts.get('nobody')).toEqual({ running: 0, queued: 0 });
    expect((await limits.countsOf(['t2'], 0)).get('t2')).toEqual({ running: 0, queued: 0 });
    expect(await limits.countsOfType('sum_two_numbers')).toEqual({ running: 1, queued: 2 });
    expect(await limits.clearTenant('t1')).toBeUndefined();
    expect(await limits.getTenant('t1')).toBeUndefined();
    // A budget outlives a clear of the limits: the row stays with it alone.
    await limits.setTenant('t1', { maxRunning: 4, llmTokensPerDay: 1000 });
    expect(await limits.clearTenant('t1')).toMatchObject({ maxRunning: null, llmTokensPerDay: 1000 });
    expect(await limits.getTenant('t1')).toMatchObject({ maxRunning: null, llmTokensPerDay: 1000 });
    await limits.setTenant('t1', { llmTokensPerDay: null });
    expect(await limits.clearTenant('t1')).toBeUndefined();
    expect(await limits.getTenant('t1')).toBeUndefined();
  });
});

describe('LimitStore.spend', () => {
  it("tokens since the day's start; dollars since the month's only when asked; cached calls and other tenants' excluded", async () => {
    const call = (tenantId: string, at: string, tokens: number, costUsd: number | null, cached = false) =>
      one.sql`insert into task_llm_calls (tenant_id, task_id, task_name, attempt, base_url, model,
          prompt_tokens, completion_tokens, cost_usd, cached, created_at)
        values (${tenantId}, ${randomUUID()}, 'query_chatgpt', 1, 'http://model', 'gpt-4o-mini',
          ${tokens}, 1, ${costUsd}, ${cached}, ${at})`;
    await call('sp', '2026-02-28T23:59:59Z', 1000, 100); // before the month
    await call('sp', '2026-03-05T12:00:00Z', 100, 2.5); // the month, not the day
    await call('sp', '2026-03-10T00:00:00Z', 10, 0.25); // the day
    await call('sp', '2026-03-10T08:00:00Z', 20, null); // the day, no price
    await call('sp', '2026-03-10T09:00:00Z', 0, 0, true); // cached
    await call('other', '2026-03-10T09:00:00Z', 500, 50);
    const day = new Date('2026-03-10T00:00:00Z');
    const month = new Date('2026-03-01T00:00:00Z');
    // Tokens: prompt + completion (each row's completion is 1).
    expect(await limits.spend('sp', day, month)).toEqual({ tokensToday: 32, costThisMonthUsd: 2.75 });
    expect(await limits.spend('sp', day)).toEqual({ tokensToday: 32, costThisMonthUsd: undefined });
    expect(await limits.spend('nobody', day, month)).toEqual({ tokensToday: 0, costThisMonthUsd: 0 });
  });
});

describe('an insert under max_queued', () => {
  it('20 racing inserts from two pools with max_queued 5 store exactly 5; the others are refused and announce nothing', async () => {
    const heard: TaskChange[] = [];
    const listener = await listenTaskChanges(
      one.sql,
      (change) => heard.push(change),
      () => {},
    );
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          stores[i % 2]?.insert(row('race'), { maxQueued: { tenant: 5 } }),
        ),
      );
      const created = results.filter((r) => r.status === 'fulfilled');
      const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      expect(created).toHaveLength(5);
      expect(refused).toHaveLength(15);
      for (const error of refused) {
        expect(error).toBeInstanceOf(QueueFullError);
        expect(error).toMatchObject({ holder: 'tenant', of: 'race', limit: 5 });
      }
      expect(await pending({ tenant: 'race' })).toBe(5);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(heard.filter((c) => (c.truncated ? c.tenantId : c.row.tenantId) === 'race')).toHaveLength(5);
    } finally {
      await listener.close();
    }
  });

  it("a type's limit counts every tenant's PENDING tasks of the type; other types pass", async () => {
    const name = 'find_longest_consecutive_letters';
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        stores[i % 2]?.insert(row(`typed-${i % 3}`, name), { maxQueued: { type: 4, tenant: 100 } }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4);
    const refused = results.find((r) => r.status === 'rejected');
    expect(refused?.status === 'rejected' && refused.reason).toMatchObject({ holder: 'type', of: name });
    expect(await pending({ name })).toBe(4);
    await expect(stores[0]?.insert(row('typed-0'), { maxQueued: { tenant: 100 } })).resolves.toMatchObject({
      created: true,
    });
  });

  it('answers a replay of an idempotency key even when the queue is full; a task leaving PENDING frees a place', async () => {
    const first = await stores[0]?.insert(row('full', 'sum_two_numbers', { idempotencyKey: 'k' }), {
      maxQueued: { tenant: 1 },
    });
    expect(first?.created).toBe(true);
    const replay = await stores[1]?.insert(row('full', 'sum_two_numbers', { idempotencyKey: 'k' }), {
      maxQueued: { tenant: 1 },
    });
    expect(replay).toMatchObject({ created: false, row: { id: first?.row.id } });
    await expect(stores[0]?.insert(row('full'), { maxQueued: { tenant: 1 } })).rejects.toBeInstanceOf(
      QueueFullError,
    );
    await expect(stores[0]?.insert(row('full'), { maxQueued: { tenant: 0 } })).rejects.toBeInstanceOf(
      QueueFullError,
    );
    await one.sql`update tasks set status = 'RUNNING', started_at = now(), attempts = 1 where owner_id = 'full'`;
    await expect(stores[0]?.insert(row('full'), { maxQueued: { tenant: 1 } })).resolves.toMatchObject({
      created: true,
    });
    // No limit: the batched insert, as ever.
    await expect(stores[0]?.insert(row('full'))).resolves.toMatchObject({ created: true });
  });
});
