/**
 * `pnpm --filter @tasker/bench bench:webhooks`: does a webhook slow task completion? One server and
 * one worker process (the built apps) on a private database; BENCH_WEBHOOK_TASKS sum_two_numbers
 * tasks (default 2000) over REST, 50 requests in flight, timed from the first POST until every task
 * of the round is COMPLETED (one count query every 20 ms). Three rounds: no webhook; a webhook on
 * task.completed whose receiver answers at once; one whose receiver takes 1 s to answer. For the
 * rounds with a webhook, also when the last delivery was recorded. Each round also prints the CPU time
 * per task of the worker process and of the PostgreSQL backends serving the bench's database (read
 * from /proc, so it holds on a machine busy with other work, where the rates move by ±50%). It
 * prints figures, not a test.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createDb } from '@tasker/db';
import { createTestEnv, spawnApp } from '@tasker/testing';
import { runBounded, sleep } from './common.ts';

const TASKS = Number(process.env.BENCH_WEBHOOK_TASKS ?? 2000);
const CONCURRENCY = 50;

async function receiver(delayMs: number): Promise<{ server: Server; url: string; count: () => number }> {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      setTimeout(() => res.writeHead(204).end(), delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : 0;
  return { server, url: `http://127.0.0.1:${port}/hook`, count: () => received };
}

/** A process's CPU time so far (user + system), in ms; 0 once it is gone. */
function cpuMs(pid: number): number {
  try {
    // Fields after the command's closing parenthesis: state is 3rd, utime the 14th, stime the 15th.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const env = createTestEnv({ WEBHOOK_ALLOW_PRIVATE: '1', LOG_LEVEL: 'warn' });
  const server = await spawnApp('server', env.vars);
  const worker = await spawnApp('worker', env.vars);
  const base = server.url ?? '';
  const db = createDb(env.databaseUrl, { max: 2 });
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const completed = async () =>
    (await db.sql<{ n: number }[]>`select count(*)::int as n from tasks where status = 'COMPLETED'`)[0]?.n ??
    0;
  const delivered = async () =>
    (
      await db.sql<
        { n: number }[]
      >`select count(*)::int as n from webhook_deliveries where status = 'delivered'`
    )[0]?.n ?? 0;

  /** CPU so far of the worker and of each PostgreSQL backend connected to the bench's database. */
  const workerPid = worker.child.pid ?? 0;
  const cpu = async () => {
    const backends = await db.sql<{ pid: number }[]>`
      select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`;
    return { worker: cpuMs(workerPid), pg: new Map(backends.map(({ pid }) => [pid, cpuMs(pid)])) };
  };
  /** CPU per task between two readings (a backend that came meanwhile counts from 0). */
  const cpuPerTask = (before: Awaited<ReturnType<typeof cpu>>, after: Awaited<ReturnType<typeof cpu>>) => {
    let pg = 0;
    for (const [pid, ms] of after.pg) pg += ms - (before.pg.get(pid) ?? 0);
    const us = (ms: number) => ((ms * 1000) / TASKS).toFixed(0);
    return `; CPU per task: worker ${us(after.worker - before.worker)} µs, PostgreSQL ${us(pg)} µs`;
  };

  /** One round: TASKS tasks, from the first POST until all COMPLETED (and all delivered, if `deliveries`). */
  const round = async (label: string, deliveries: boolean) => {
    const before = await completed();
    const deliveredBefore = await delivered();
    const [{ since } = { since: new Date() }] = await db.sql<{ since: Date }[]>`select now() as since`;
    const cpuBefore = await cpu();
    const started = performance.now();
    await runBounded(TASKS, CONCURRENCY, async (i) => {
      await post('/tasks', { name: 'sum_two_numbers', input: { a: i, b: 1 } });
    });
    const submitted = performance.now();
    while ((await completed()) < before + TASKS) await sleep(20);
    const done = performance.now();
    let deliveredAt: number | undefined;
    if (deliveries) {
      while ((await delivered()) < deliveredBefore + TASKS) await sleep(20);
      deliveredAt = performance.now();
    }
    const cpuAfter = await cpu();
    const seconds = (done - started) / 1000;
    // Each task's own time from its INSERT to its COMPLETED, by PostgreSQL's clock.
    const [lag] = await db.sql<{ p50: number; p99: number }[]>`
      select percentile_cont(0.5) within group (order by ms) as p50, percentile_cont(0.99) within group (order by ms) as p99
      from (select extract(epoch from finished_at - created_at) * 1000 as ms from tasks where created_at >= ${since}) t`;
    console.log(
      `${label.padEnd(34)} e2e ${seconds.toFixed(2)} s, ${(TASKS / seconds).toFixed(0)} tasks/s` +
        ` (submit ${((submitted - started) / 1000).toFixed(2)} s); created→completed p50 ${Math.round(lag?.p50 ?? 0)} ms, p99 ${Math.round(lag?.p99 ?? 0)} ms` +
        (deliveredAt === undefined
          ? ''
          : `; all delivered after ${((deliveredAt - started) / 1000).toFixed(2)} s`) +
        cpuPerTask(cpuBefore, cpuAfter),
    );
  };

  const fast = await receiver(0);
  const slow = await receiver(1000);
  try {
    console.log(`webhooks bench: ${TASKS} tasks a round, ${CONCURRENCY} POSTs in flight, 1 server, 1 worker`);
    await round('warm-up (no webhook)', false);
    // Alternated, so that a machine busy with something else weighs on both kinds of round.
    for (let i = 0; i < 2; i++) {
      await round('no webhook', false);
      const hook = await post('/webhooks', { url: fast.url, events: ['task.completed'] });
      await round('webhook, receiver answers at once', true);
      await fetch(`${base}/webhooks/${String(hook.id)}`, { method: 'DELETE' });
    }
    await post('/webhooks', { url: slow.url, events: ['task.completed'] });
    await round('webhook, receiver takes 1 s', true);
    console.log(`receivers got ${fast.count()} + ${slow.count()} deliveries`);
  } finally {
    fast.server.close();
    slow.server.close();
    await Promise.all([server.stop(), worker.stop()]);
    await db.close();
    await env.cleanup();
  }
}

await main();
