/**
 * Webhooks in storage (migration 0019, WebhookStore): the trigger stores one delivery per matching
 * webhook (by tenant, event and task type) and one for the task's own webhook_url, only when a task
 * becomes finished (again after a retry), in the same transaction (a rolled-back ending stores
 * none); `take` leases what is due and two takers never share a row; `record` retries, fails and
 * delivers; deliveries go with their task at retention.
 */
import { randomUUID } from 'node:crypto';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type DbClient, migrateDatabase, TaskStore, WebhookStore } from '../src/index.ts';

let env: TestEnv;
let db: DbClient;
let webhooks: WebhookStore;

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl);
  db = createDb(env.databaseUrl, { max: 4 });
  webhooks = new WebhookStore(db.db);
});

afterAll(async () => {
  await db?.close();
  await env?.cleanup();
});

async function task(
  tenant: string,
  name = 'sum_two_numbers',
  webhookUrl: string | null = null,
): Promise<string> {
  const id = randomUUID();
  await db.sql`insert into tasks (id, owner_id, name, input, webhook_url) values (${id}, ${tenant}, ${name}, '{}', ${webhookUrl})`;
  return id;
}
const finish = (id: string, status: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'EXPIRED', at = 'now()') =>
  db.sql.unsafe(
    `update tasks set status = '${status}', finished_at = ${at}, version = version + 1 where id = '${id}'`,
  );
const deliveriesOf = (taskId: string) =>
  db.sql<{ webhook_id: string | null; url: string; event: string }[]>`
    select webhook_id, url, event from webhook_deliveries where task_id = ${taskId} order by url`;

describe('the trigger', () => {
  it('stores a delivery per matching webhook and for the own webhook_url, only when the task finishes', async () => {
    const all = await webhooks.create({
      tenantId: 't1',
      url: 'http://a/',
      events: ['task.completed', 'task.failed'],
    });
    await webhooks.create({
      tenantId: 't1',
      url: 'http://b/',
      events: ['task.completed'],
      taskNames: ['other_type'],
    });
    await webhooks.create({ tenantId: 't1', url: 'http://c/', events: ['task.cancelled'] });
    await webhooks.create({ tenantId: 't2', url: 'http://d/', events: ['task.completed'] });
    const id = await task('t1', 'sum_two_numbers', 'http://own/');
    await db.sql`update tasks set status = 'RUNNING', version = version + 1 where id = ${id}`;
    await db.sql`update tasks set progress = '{"percent": 5}', version = version + 1 where id = ${id}`;
    expect(await deliveriesOf(id)).toEqual([]);
    await finish(id, 'COMPLETED');
    expect(await deliveriesOf(id)).toEqual([
      { webhook_id: all.info.id, url: 'http://a/', event: 'task.completed' },
      { webhook_id: null, url: 'http://own/', event: 'task.completed' },
    ]);
    // Retried, then failed: new deliveries for the new ending.
    await db.sql`update tasks set status = 'PENDING', finished_at = null, version = version + 1 where id = ${id}`;
    await finish(id, 'FAILED');
    expect((await deliveriesOf(id)).map((d) => d.event).sort()).toEqual([
      'task.completed',
      'task.completed',
      'task.failed',
      'task.failed',
    ]);
  });

  it('stores nothing when the ending rolls back', async () => {
    await webhooks.create({ tenantId: 't3', url: 'http://e/', events: ['task.expired'] });
    const id = await task('t3');
    await db.sql
      .begin(async (tx) => {
        await tx.unsafe(`update tasks set status = 'EXPIRED', finished_at = now() where id = '${id}'`);
        throw new Error('rolled back');
      })
      .catch(() => {});
    expect(await deliveriesOf(id)).toEqual([]);
    await finish(id, 'EXPIRED');
    expect(await deliveriesOf(id)).toHaveLength(1);
  });
});

describe('sending', () => {
  it('leases what is due to one taker, records retries, failure and delivery', async () => {
    const hook = await webhooks.create({ tenantId: 't4', url: 'http://f/', events: ['task.completed'] });
    const ids = await Promise.all(Array.from({ length: 6 }, () => task('t4')));
    for (const id of ids) await finish(id, 'COMPLETED');
    const other = new WebhookStore(db.db);
    const [a, b] = await Promise.all([webhooks.take(4, 60_000), other.take(4, 60_000)]);
    const taken = [...(a ?? []), ...(b ?? [])];
    // Other tests' deliveries are due too: only this webhook's count here.
    const mine = taken.filter((t) => t.delivery.webhookId === hook.info.id);
    expect(new Set(taken.map((t) => t.delivery.id)).size).toBe(taken.length);
    expect(mine.every((t) => t.secret === hook.secret)).toBe(true);
    // Leased: nothing of it is due again now.
    const again = await webhooks.take(100, 60_000);
    expect(again.some((t) => taken.some((x) => x.delivery.id === t.delivery.id))).toBe(false);

    const [first, second, third] = [...mine, ...again.filter((t) => t.delivery.webhookId === hook.info.id)];
    if (!first || !second || !third) throw new Error('fewer than 3 deliveries taken');
    const attempt = (status: number | null) => ({
      at: new Date().toISOString(),
      status,
      error: status === 200 ? null : 'HTTP 500',
      durationMs: 1,
    });
    const recorded = await webhooks.record([
      { id: first.delivery.id, attempt: attempt(200), outcome: { delivered: true } },
      { id: second.delivery.id, attempt: attempt(500), outcome: { delivered: false, retryInMs: 60_000 } },
      { id: third.delivery.id, attempt: attempt(500), outcome: { delivered: false, retryInMs: null } },
    ]);
    const byId = new Map(recorded.map((r) => [r.id, r]));
    expect(byId.get(first.delivery.id)).toMatchObject({ status: 'delivered', attempts: 1, lastStatus: 200 });
    expect(byId.get(second.delivery.id)).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastError: 'HTTP 500',
    });
    expect(byId.get(third.delivery.id)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(byId.get(second.delivery.id)?.log).toHaveLength(1);
    // A delivery recorded already is not recorded twice (a second sender after its lease ran out).
    expect(
      await webhooks.record([{ id: first.delivery.id, attempt: attempt(200), outcome: { delivered: true } }]),
    ).toEqual([]);
    // The body is fixed once: the first writer wins.
    const bodies = await webhooks.fixBodies([{ id: second.delivery.id, body: '{"a":1}' }]);
    expect(bodies.get(second.delivery.id)).toBe('{"a":1}');
    expect(
      (await webhooks.fixBodies([{ id: second.delivery.id, body: '{"b":2}' }])).get(second.delivery.id),
    ).toBe('{"a":1}');
    // Redelivered by hand: due now, a new round.
    expect(await webhooks.redeliver(hook.info.id, third.delivery.id)).toMatchObject({
      status: 'pending',
      attempts: 0,
    });
    expect(await webhooks.redeliver(randomUUID(), third.delivery.id)).toBeUndefined();
  });

  it('deletes a task’s deliveries with it at retention', async () => {
    await webhooks.create({ tenantId: 't5', url: 'http://g/', events: ['task.completed'] });
    const old = await task('t5');
    const young = await task('t5');
    await finish(old, 'COMPLETED', "now() - interval '40 days'");
    await finish(young, 'COMPLETED');
    const store = new TaskStore(db);
    const cutoff = new Date(Date.now() - 30 * 24 * 3600 * 1000);
    while ((await store.pruneFinished(cutoff, 100)) === 100) {}
    expect(await deliveriesOf(old)).toEqual([]);
    expect(await deliveriesOf(young)).toHaveLength(1);
  });
});
