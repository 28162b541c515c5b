/**
 * Memory and throughput over a long run: ONE server + ONE worker process (as `pnpm start` runs
 * them) take BENCH_SOAK_SHORT (20,000) tasks, then, fresh processes, BENCH_SOAK_LONG (100,000),
 * over REST with BENCH_CONCURRENCY (64) requests in flight. It prints tasks/s of both (the long
 * run should be within 15 % of the short one) and the RSS of each process at start, at the end and
 * after BENCH_SOAK_IDLE_MS (10 s) idle, against the 200 MB target. Figures, not a test.
 */
import { createDb } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp } from '@tasker/testing';
import {
  type BenchConfig,
  intVar,
  loadBenchConfig,
  rssMb,
  runBounded,
  sleep,
  taskParameters,
} from './common.ts';
import { nodeHttpClient } from './http-client.ts';
import { onInterrupt } from './interrupt.ts';

const RSS_TARGET_MB = 200;
const RATIO_TARGET = 0.85;

export interface SoakResult {
  tasks: number;
  tasksPerSecond: number;
  rss: Record<'server' | 'worker', { start: number; end: number; idle: number }>;
  failed: number;
}

async function soak(tasks: number, config: BenchConfig, idleMs: number): Promise<SoakResult> {
  const env = createTestEnv({
    WORKER_CONCURRENCY: String(config.workerConcurrency),
    DATABASE_POOL_SIZE: String(config.poolSize),
  });
  const apps: AppProcess[] = [];
  const removeInterrupt = onInterrupt(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await env.cleanup();
  });
  const pollDb = createDb(env.databaseUrl, { max: 1, name: 'bench-soak-poller' });
  try {
    // Diagnosis: BENCH_PROFILE_DIR makes each process write a V8 CPU profile when it exits.
    const nodeArgs = config.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${config.profileDir}`] : [];
    const server = await spawnApp('server', env.vars, { nodeArgs });
    apps.push(server);
    const worker = await spawnApp('worker', env.vars, { nodeArgs });
    apps.push(worker);
    await sleep(1000);
    const pids = { server: server.child.pid, worker: worker.child.pid };
    const start = { server: rssMb(pids.server), worker: rssMb(pids.worker) };
    const post = nodeHttpClient(config.concurrency);
    const url = `${server.url}/run-task`;
    const began = performance.now();
    await runBounded(tasks, config.concurrency, async (i) => {
      const answer = await post(
        url,
        JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: taskParameters(0, i) }),
      );
      if (answer.status !== 200) throw new Error(`run-task answered ${answer.status}: ${answer.text}`);
    });
    // Every submission was answered: wait until no row is unfinished. One cheap query (the partial
    // index of unfinished rows, LIMIT 1), never a count over a table that grows all run long.
    let doneAt = performance.now();
    for (;;) {
      const [row] = await pollDb.sql<{ busy: boolean }[]>`
        select exists (select 1 from tasks where status in ('PENDING', 'RUNNING')) as busy`;
      doneAt = performance.now();
      if (!row?.busy) break;
      await sleep(config.pollMs);
    }
    const [counts] = await pollDb.sql<{ completed: number; failed: number }[]>`
      select count(*) filter (where status = 'COMPLETED')::int as completed,
             count(*) filter (where status <> 'COMPLETED')::int as failed from tasks`;
    const completion = { failed: counts?.failed ?? 0, completed: counts?.completed ?? 0 };
    if (completion.completed !== tasks)
      throw new Error(`${completion.completed} of ${tasks} tasks COMPLETED`);
    const seconds = (doneAt - began) / 1000;
    const end = { server: rssMb(pids.server), worker: rssMb(pids.worker) };
    await sleep(idleMs);
    const idle = { server: rssMb(pids.server), worker: rssMb(pids.worker) };
    return {
      tasks,
      tasksPerSecond: tasks / seconds,
      failed: completion.failed,
      rss: {
        server: { start: start.server, end: end.server, idle: idle.server },
        worker: { start: start.worker, end: end.worker, idle: idle.worker },
      },
    };
  } finally {
    await Promise.all(apps.map((app) => app.stop()));
    await pollDb.close();
    await env.cleanup();
    removeInterrupt();
  }
}

export async function runSoak(): Promise<{ short: SoakResult; long: SoakResult }> {
  const config = loadBenchConfig();
  const shortTasks = intVar('BENCH_SOAK_SHORT', 20_000, 1);
  const longTasks = intVar('BENCH_SOAK_LONG', 100_000, 1);
  const idleMs = intVar('BENCH_SOAK_IDLE_MS', 10_000, 1);
  console.log(
    `\nLong run: 1 server + 1 worker, sum_two_numbers over REST, ${config.concurrency} in flight: ${shortTasks.toLocaleString('en-US')} tasks, then ${longTasks.toLocaleString('en-US')} (fresh processes)`,
  );
  const short = await soak(shortTasks, config, idleMs);
  const long = await soak(longTasks, config, idleMs);
  const f = (n: number) => n.toFixed(0).padStart(6);
  console.log(
    '                     tasks/s   server RSS MB (start / end / idle)   worker RSS MB (start / end / idle)',
  );
  for (const r of [short, long]) {
    console.log(
      `  ${r.tasks.toLocaleString('en-US').padStart(8)} tasks   ${f(r.tasksPerSecond)}      ${f(r.rss.server.start)} ${f(r.rss.server.end)} ${f(r.rss.server.idle)}                 ${f(r.rss.worker.start)} ${f(r.rss.worker.end)} ${f(r.rss.worker.idle)}`,
    );
  }
  const ratio = long.tasksPerSecond / short.tasksPerSecond;
  const worst = Math.max(
    long.rss.server.end,
    long.rss.server.idle,
    long.rss.worker.end,
    long.rss.worker.idle,
  );
  console.log(
    `  long / short throughput: ${ratio.toFixed(2)} (target >= ${RATIO_TARGET}) → ${ratio >= RATIO_TARGET ? 'PASS' : 'FAIL'}`,
  );
  console.log(
    `  largest RSS after the long run: ${worst.toFixed(0)} MB (target < ${RSS_TARGET_MB} MB per process) → ${worst < RSS_TARGET_MB ? 'PASS' : 'FAIL'}`,
  );
  if (short.failed + long.failed > 0) console.log(`  ${short.failed + long.failed} tasks FAILED`);
  return { short, long };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runSoak().catch((error: unknown) => {
    console.error('soak benchmark failed:', error);
    process.exitCode = 1;
  });
}
