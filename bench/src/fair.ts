/**
 * `pnpm bench:fair`: how fairly the workers are shared. Tenant A floods BENCH_FAIR_TASKS (5,000)
 * one-slot tasks (a `query_chatgpt` against a local fake model that answers in BENCH_FAIR_SLOT_MS,
 * 1 s); tenants B..E each submit a few short tasks (`sum_two_numbers`) while A's backlog waits.
 * Printed: B..E's p50/p99 wait (submission to start) against the same tasks on an idle system, in
 * ms and in slot lengths, and A's throughput against A alone. Goals (issue 18): B..E's p99 under 2
 * slot lengths; A at least 0.9 of alone. Figures, not a test.
 *
 * Each phase runs on the built server and worker processes' engine (workers: `apps/worker/dist`,
 * BENCH_FAIR_WORKERS of them with BENCH_FAIR_CONCURRENCY slots each; submissions through the same
 * API the server's routes call, in this process), in its own database and Redis prefix.
 * BENCH_MODE=postgres runs the PostgreSQL-only queue.
 */
import { type TaskStore, tasks } from '@tasker/db';
import {
  createEngine,
  createLogger,
  createTaskApi,
  type Engine,
  loadEnv,
  type TaskApi,
} from '@tasker/engine';
import { type AppProcess, createTestEnv, type FakeOpenAI, spawnApp, startFakeOpenAI } from '@tasker/testing';
import { and, eq, isNotNull, sql } from 'drizzle-orm';
import { enumVar, fmt, intVar, percentile, sleep } from './common.ts';

const FLOOD = intVar('BENCH_FAIR_TASKS', 5000, 1);
const SLOT_MS = intVar('BENCH_FAIR_SLOT_MS', 1000, 1);
const WORKERS = intVar('BENCH_FAIR_WORKERS', 2, 1);
const CONCURRENCY = intVar('BENCH_FAIR_CONCURRENCY', 100, 1);
const SHORT_PER_TENANT = intVar('BENCH_FAIR_SHORT', 5, 1);
const OTHERS = ['tenant-b', 'tenant-c', 'tenant-d', 'tenant-e'];
const MODE = enumVar('BENCH_MODE', ['redis', 'postgres'], 'redis');

interface Stack {
  engine: Engine;
  api: TaskApi;
  store: TaskStore;
  workers: AppProcess[];
  close(): Promise<void>;
}

async function startStack(fake: FakeOpenAI): Promise<Stack> {
  const env = createTestEnv({
    OPENAI_API_KEY: 'sk-bench',
    OPENAI_BASE_URL: fake.baseURL,
    WORKER_CONCURRENCY: String(CONCURRENCY),
    DATABASE_POOL_SIZE: '8',
    LOG_LEVEL: 'warn',
    ...(MODE === 'postgres' ? { REDIS_URL: '' } : {}),
  });
  const parsed = loadEnv(env.vars);
  const engine = await createEngine(parsed, createLogger(parsed, 'bench-fair'), 'server');
  const workers = await Promise.all(Array.from({ length: WORKERS }, () => spawnApp('worker', env.vars)));
  return {
    engine,
    api: createTaskApi(engine.lifecycle),
    store: engine.lifecycle.resources.store,
    workers,
    close: async () => {
      await Promise.all(workers.map((w) => w.stop('SIGTERM')));
      await engine.close();
      await env.cleanup();
    },
  };
}

/** Submits `count` slow tasks of one tenant, 200 at a time. */
async function flood(stack: Stack, tenant: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, count - i) }, (_, j) =>
        stack.api.submit(tenant, { name: 'query_chatgpt', input: { prompt: `${tenant}-${i + j}` } }),
      ),
    );
  }
}

async function count(stack: Stack, tenant: string, status: 'COMPLETED' | 'RUNNING'): Promise<number> {
  const [row] = await stack.engine.db.db
    .select({ n: sql<number>`count(*)::int` })
    .from(tasks)
    .where(and(eq(tasks.tenantId, tenant), eq(tasks.status, status)));
  return row?.n ?? 0;
}

/** Submits the short tasks of B..E, one tenant after the other every `gapMs`; their waits in ms. */
async function shortTasks(stack: Stack, gapMs: number): Promise<number[]> {
  const ids: string[] = [];
  for (let i = 0; i < SHORT_PER_TENANT; i++) {
    for (const tenant of OTHERS) {
      ids.push((await stack.api.submit(tenant, { name: 'sum_two_numbers', input: { a: i, b: 1 } })).id);
      await sleep(gapMs);
    }
  }
  const deadline = Date.now() + 600_000;
  for (;;) {
    const rows = await stack.engine.db.db
      .select({ createdAt: tasks.createdAt, startedAt: tasks.startedAt })
      .from(tasks)
      .where(and(sql`${tasks.id} = any(${`{${ids.join(',')}}`}::uuid[])`, isNotNull(tasks.startedAt)));
    if (rows.length === ids.length)
      return rows.map((r) => (r.startedAt?.getTime() ?? 0) - r.createdAt.getTime());
    if (Date.now() > deadline) throw new Error('the short tasks did not all start within 10 minutes');
    await sleep(50);
  }
}

/** Seconds until every one of the tenant's `total` tasks is COMPLETED, from `since`. */
async function untilDone(stack: Stack, tenant: string, total: number, since: number): Promise<number> {
  while ((await count(stack, tenant, 'COMPLETED')) < total) await sleep(100);
  return (Date.now() - since) / 1000;
}

async function main() {
  const fake = await startFakeOpenAI({ reply: () => 'one two three four', chunkDelayMs: SLOT_MS / 4 });
  const slots = WORKERS * CONCURRENCY;
  console.log(
    `bench:fair (${MODE} mode): tenant A floods ${fmt(FLOOD)} tasks of ${SLOT_MS} ms; ${OTHERS.length} tenants submit ${SHORT_PER_TENANT} short tasks each; ${WORKERS} workers x ${CONCURRENCY} slots = ${slots}`,
  );
  try {
    // 1. Idle: the short tasks alone.
    let stack = await startStack(fake);
    const idle = await shortTasks(stack, 20);
    await stack.close();

    // 2. A alone.
    stack = await startStack(fake);
    let started = Date.now();
    await flood(stack, 'tenant-a', FLOOD);
    const aloneSeconds = await untilDone(stack, 'tenant-a', FLOOD, started);
    await stack.close();

    // 3. A's flood, and the short tasks while A's backlog waits.
    stack = await startStack(fake);
    started = Date.now();
    await flood(stack, 'tenant-a', FLOOD);
    while ((await count(stack, 'tenant-a', 'RUNNING')) < slots) await sleep(50);
    const spread = Math.max(
      20,
      Math.floor((FLOOD / slots) * SLOT_MS * 0.5) / (SHORT_PER_TENANT * OTHERS.length),
    );
    const mixed = await shortTasks(stack, spread);
    const mixedSeconds = await untilDone(stack, 'tenant-a', FLOOD, started);
    await stack.close();

    const sorted = (waits: number[]) => [...waits].sort((a, b) => a - b);
    const row = (label: string, waits: number[]) => {
      const p50 = percentile(sorted(waits), 50);
      const p99 = percentile(sorted(waits), 99);
      return `  ${label.padEnd(34)} p50 ${fmt(p50).padStart(6)} ms (${fmt(p50 / SLOT_MS, 2)} slots)   p99 ${fmt(p99).padStart(6)} ms (${fmt(p99 / SLOT_MS, 2)} slots)`;
    };
    const aAlone = FLOOD / aloneSeconds;
    const aMixed = FLOOD / mixedSeconds;
    const p99Slots = percentile(sorted(mixed), 99) / SLOT_MS;
    console.log("\nWait of B..E's short tasks, from submission to start:");
    console.log(row('on an idle system', idle));
    console.log(row(`behind A's backlog of ${fmt(FLOOD)}`, mixed));
    console.log(
      `\nA's throughput: alone ${fmt(aAlone, 1)} tasks/s, with B..E ${fmt(aMixed, 1)} tasks/s = ${fmt(aMixed / aAlone, 3)} of alone`,
    );
    console.log(
      `\ngoals: B..E p99 < 2 slot lengths: ${fmt(p99Slots, 2)} ${p99Slots < 2 ? 'met' : 'NOT MET'}; A >= 0.9 of alone: ${fmt(aMixed / aAlone, 3)} ${aMixed / aAlone >= 0.9 ? 'met' : 'NOT MET'}`,
    );
  } finally {
    await fake.close();
  }
}

await main();
