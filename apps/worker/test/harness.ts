import { randomUUID } from 'node:crypto';
import { listenTaskChanges, type TaskChangeListener, type TaskStore, tasks } from '@tasker/db';
import {
  createEngine,
  createLogger,
  createTaskApi,
  type Engine,
  loadEnv,
  type TaskApi,
} from '@tasker/engine';
import { createTestEnv, type TestEnv, waitFor } from '@tasker/testing';
import { sql } from 'drizzle-orm';

/**
 * The server's own submit path (the API the router calls, over an engine in the server's role),
 * without HTTP, plus probes: row counts by status, and every change PostgreSQL announced.
 */
export class Harness {
  readonly events: { id: string; status: string }[] = [];
  readonly api: TaskApi;
  readonly store: TaskStore;
  private listener: TaskChangeListener | undefined;

  private constructor(
    readonly env: TestEnv,
    readonly engine: Engine,
  ) {
    this.api = createTaskApi(engine.lifecycle);
    this.store = engine.lifecycle.resources.store;
  }

  get db() {
    return this.engine.db;
  }

  static async start(vars: Record<string, string> = {}): Promise<Harness> {
    const env = createTestEnv(vars);
    const parsed = loadEnv(env.vars);
    const harness = new Harness(env, await createEngine(parsed, createLogger(parsed, 'harness'), 'server'));
    // On PostgreSQL itself (db.direct): behind a pooler (TEST_PGBOUNCER_URL) a LISTEN hears nothing.
    harness.listener = await listenTaskChanges(
      harness.engine.db.direct,
      (change) => {
        // A new task is announced by its key (id and status), a change with its row.
        harness.events.push(
          change.truncated
            ? { id: change.id, status: change.status }
            : { id: change.row.id, status: change.row.status },
        );
      },
      () => {},
    );
    return harness;
  }

  /** Submits sum_two_numbers tasks (a = i, b = 2i) as the server does, 50 at a time. */
  async submitSums(count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i += 50) {
      const batch = Array.from({ length: Math.min(50, count - i) }, (_, j) => i + j);
      const results = await Promise.all(
        batch.map((n) => this.api.submit('default', { name: 'sum_two_numbers', input: { a: n, b: 2 * n } })),
      );
      ids.push(...results.map((r) => r.id));
    }
    return ids;
  }

  /** What a server that died between its two writes leaves behind: rows with no job. */
  async insertSumsWithoutJobs(count: number): Promise<string[]> {
    const rows = Array.from({ length: count }, (_, i) => ({
      id: randomUUID(),
      name: 'sum_two_numbers',
      input: { a: i, b: 2 * i },
      maxAttempts: 1,
    }));
    await this.db.db.insert(tasks).values(rows);
    return rows.map((r) => r.id);
  }

  async submit(name: string, input: unknown, maxAttempts: number): Promise<string> {
    return (await this.api.submit('default', { name, input, maxAttempts })).id;
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
    await this.listener?.close().catch(() => {});
    await this.engine.close().catch(() => {});
    await this.env.cleanup();
  }
}
