import { randomUUID } from 'node:crypto';
import { createRedis, StatusBus, TaskQueue } from '@tasker/core';
import { createDb, type DbClient, migrateDatabase, TaskStore, tasks } from '@tasker/db';
import { createTestEnv, type TestEnv, waitFor } from '@tasker/testing';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';

/**
 * What the server does on submission (INSERT, then enqueue), without HTTP, plus a few probes:
 * row counts by status and a log of every published state change.
 */
export class Harness {
  readonly db: DbClient;
  readonly store: TaskStore;
  readonly events: { id: string; status: string }[] = [];
  private redis: Redis;
  private subscriber: Redis;
  queue: TaskQueue;

  private constructor(readonly env: TestEnv) {
    this.db = createDb(env.databaseUrl, { max: 4 });
    this.store = new TaskStore(this.db);
    this.redis = createRedis(env.redisUrl, 'command');
    this.queue = new TaskQueue(this.redis, env.prefix);
    this.subscriber = new Redis(env.redisUrl, { maxRetriesPerRequest: null });
  }

  static async start(vars: Record<string, string> = {}): Promise<Harness> {
    const env = createTestEnv(vars);
    await migrateDatabase(env.databaseUrl);
    const harness = new Harness(env);
    harness.subscriber.on('message', (_channel, message) => {
      const event = StatusBus.parse(message);
      if (event) harness.events.push({ id: event.id, status: event.status });
    });
    harness.subscriber.on('error', () => {});
    harness.redis.on('error', () => {});
    await harness.subscriber.subscribe(`${env.prefix}:events`);
    return harness;
  }

  /** Inserts sum_two_numbers rows (a = i, b = 2i); enqueues them unless `enqueue: false`. */
  async submitSums(count: number, { enqueue = true } = {}): Promise<string[]> {
    const rows = Array.from({ length: count }, (_, i) => ({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: { a: i, b: 2 * i },
      maxAttempts: 1,
    }));
    for (let i = 0; i < rows.length; i += 500) await this.db.db.insert(tasks).values(rows.slice(i, i + 500));
    const inserted = rows.map((r) => ({ ...r, priority: 0, runAfter: null }));
    if (enqueue)
      for (let i = 0; i < inserted.length; i += 500) await this.queue.enqueue(inserted.slice(i, i + 500));
    return rows.map((r) => r.id);
  }

  async submit(name: string, input: unknown, maxAttempts: number): Promise<string> {
    const { row } = await this.store.insert({ id: randomUUID(), name, input, maxAttempts });
    await this.queue.enqueue([row]);
    return row.id;
  }

  async counts(): Promise<Record<string, number>> {
    const rows = await this.db.sql<{ status: string; n: number }[]>`
      select status, count(*)::int as n from tasks group by status`;
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async waitForStatus(status: string, count: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => ((await this.counts())[status] ?? 0) >= count, {
      timeoutMs,
      intervalMs: 50,
      what: `${count} ${status} tasks (have ${JSON.stringify(await this.counts())})`,
    });
  }

  /** Rows whose output is not a + b. */
  async wrongSums(): Promise<number> {
    const [row] = await this.db.db
      .select({ n: sql<number>`count(*)::int` })
      .from(tasks)
      .where(
        sql`${tasks.status} <> 'COMPLETED' or ${tasks.output} <> to_jsonb((${tasks.input}->>'a')::numeric + (${tasks.input}->>'b')::numeric)`,
      );
    return row?.n ?? -1;
  }

  completedEventsPerTask(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const e of this.events) if (e.status === 'COMPLETED') counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    return counts;
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => {});
    this.redis.disconnect();
    this.subscriber.disconnect();
    await this.db.close();
    await this.env.cleanup();
  }
}
