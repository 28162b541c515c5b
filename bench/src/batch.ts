/**
 * `pnpm bench:batch`: how many tasks per second Tasker accepts over REST in batches
 * (`POST /tasks/batch`, BENCH_BATCH_SIZE tasks a request), beside the single-submit rate
 * (`POST /tasks`, one task a request) measured in the same run, on the same stack: the built server
 * (apps/server/dist) and worker (apps/worker/dist) as processes, Redis mode unless
 * BENCH_BATCH_QUEUE=postgres. Accepted = answered 201 with the task's id. Every accepted task is then
 * run by the worker and checked: COMPLETED, output = a + b, no row missing or extra.
 * See bench/README.md ("pnpm bench:batch").
 */
import { createDb } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp } from '@tasker/testing';
import { z } from 'zod';
import {
  enumVar,
  fmt,
  intVar,
  loadBenchConfig,
  MEASURED_BASE,
  percentile,
  runBounded,
  table,
  taskParameters,
  verifyResults,
  WARMUP_BASE,
  waitForCompletion,
} from './common.ts';
import { type CpuFigure, fixedGroup, postgresBackends, redisServers, startCpuWindow } from './cpu.ts';
import { nodeHttpClient } from './http-client.ts';
import { onInterrupt } from './interrupt.ts';

/** The goal: batches of 1,000 over REST accepted at this rate at least, in Redis mode. */
const GOAL = 30_000;

const config = loadBenchConfig();
const batchSize = intVar('BENCH_BATCH_SIZE', 1000, 1, 1000);
const batchTasks = intVar('BENCH_BATCH_TASKS', 100_000, 1);
const batchConcurrency = intVar('BENCH_BATCH_CONCURRENCY', 4, 1);
const queue = enumVar('BENCH_BATCH_QUEUE', ['redis', 'postgres'], 'redis');

const createdAnswer = z.object({ id: z.uuid() });
const batchAnswer = z.object({
  tasks: z.array(z.object({ id: z.uuid(), created: z.boolean(), matched: z.string().nullable() })),
});

interface Phase {
  label: string;
  tasks: number;
  requests: number;
  seconds: number;
  /** Request latencies, ms, sorted. */
  latencies: number[];
  cpu: CpuFigure[];
}

async function main(): Promise<number> {
  const env = createTestEnv({
    WORKER_CONCURRENCY: String(config.workerConcurrency),
    DATABASE_POOL_SIZE: String(config.poolSize),
    RATE_LIMIT_PER_MINUTE: '0',
    ...(queue === 'postgres' ? { REDIS_URL: '' } : {}),
  });
  const nodeArgs = config.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${config.profileDir}`] : [];
  const database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));
  const apps: AppProcess[] = [];
  const removeInterrupt = onInterrupt(async () => {
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
    await env.cleanup();
  });
  const pollDb = createDb(env.databaseUrl, { max: 1, name: 'bench-poller' });
  try {
    const server = await spawnApp('server', env.vars, { nodeArgs });
    apps.push(server);
    if (!server.url) throw new Error('server started without telling its URL');
    console.log(
      `bench:batch: ${queue === 'redis' ? 'Redis' : 'PostgreSQL-only'} mode, 1 server; ` +
        `single: ${config.tasks} POST /tasks, ${config.concurrency} in flight; ` +
        `batch: ${batchTasks} tasks in POST /tasks/batch of ${batchSize}, ${batchConcurrency} in flight` +
        (config.profileDir ? `; CPU profiles in ${config.profileDir} (server pid ${server.child.pid})` : ''),
    );
    const post = nodeHttpClient(Math.max(config.concurrency, batchConcurrency));
    const expected = new Map<string, number>();
    const errors: string[] = [];
    const note = (problem: string) => {
      if (errors.length < 10) errors.push(problem);
    };

    /** `count` tasks from `base`, one POST /tasks each, `concurrency` in flight. */
    const singles = async (base: number, count: number): Promise<number[]> => {
      const latencies: number[] = [];
      await runBounded(count, config.concurrency, async (index) => {
        const { a, b } = taskParameters(base, index);
        const sent = performance.now();
        const { status, text } = await post(
          `${server.url}/tasks`,
          JSON.stringify({ name: 'sum_two_numbers', input: { a, b } }),
        );
        latencies.push(performance.now() - sent);
        const parsed = status === 201 ? createdAnswer.safeParse(JSON.parse(text)) : undefined;
        if (!parsed?.success) return note(`POST /tasks: HTTP ${status}: ${text.slice(0, 200)}`);
        expected.set(parsed.data.id, a + b);
      });
      return latencies;
    };

    /** `count` tasks from `base`, in POST /tasks/batch of `batchSize`, `batchConcurrency` in flight. */
    const batches = async (base: number, count: number): Promise<number[]> => {
      const latencies: number[] = [];
      const requests = Math.ceil(count / batchSize);
      await runBounded(requests, batchConcurrency, async (request) => {
        const first = request * batchSize;
        const items = Array.from({ length: Math.min(batchSize, count - first) }, (_, i) =>
          taskParameters(base, first + i),
        );
        const body = JSON.stringify({
          tasks: items.map(({ a, b }) => ({ name: 'sum_two_numbers', input: { a, b } })),
        });
        const sent = performance.now();
        const { status, text } = await post(`${server.url}/tasks/batch`, body);
        latencies.push(performance.now() - sent);
        const parsed = status === 201 ? batchAnswer.safeParse(JSON.parse(text)) : undefined;
        if (!parsed?.success) return note(`POST /tasks/batch: HTTP ${status}: ${text.slice(0, 200)}`);
        if (parsed.data.tasks.length !== items.length)
          return note(`POST /tasks/batch: ${parsed.data.tasks.length} answers for ${items.length} tasks`);
        parsed.data.tasks.forEach((answer, i) => {
          const item = items[i];
          if (!answer.created || !item) note(`batch item ${first + i}: not created`);
          else expected.set(answer.id, item.a + item.b);
        });
      });
      return latencies;
    };

    const measure = async (
      label: string,
      tasks: number,
      requests: number,
      run: () => Promise<number[]>,
    ): Promise<Phase> => {
      const cpu = startCpuWindow([
        fixedGroup('bench process (HTTP client)', [process.pid]),
        fixedGroup('server process', [server.child.pid]),
        postgresBackends('postgres backends (this DB)', database),
        redisServers('redis-server'),
      ]);
      const started = performance.now();
      const latencies = await run();
      const seconds = (performance.now() - started) / 1000;
      return {
        label,
        tasks,
        requests,
        seconds,
        latencies: latencies.sort((x, y) => x - y),
        cpu: cpu.stop().groups,
      };
    };

    // Warm-up (not measured): both routes, so that both are compiled and their statements prepared.
    await singles(WARMUP_BASE, config.warmup);
    await batches(WARMUP_BASE + config.warmup, Math.min(batchTasks, 2 * batchSize));
    const warm = expected.size;

    const single = await measure('single: POST /tasks', config.tasks, config.tasks, () =>
      singles(MEASURED_BASE, config.tasks),
    );
    const batch = await measure(
      `batch: POST /tasks/batch of ${batchSize}`,
      batchTasks,
      Math.ceil(batchTasks / batchSize),
      () => batches(MEASURED_BASE + config.tasks, batchTasks),
    );
    const accepted = expected.size - warm;

    // Then every accepted task is run, and every row checked.
    console.log(`  accepted ${expected.size} tasks; starting the worker to run and check them all...`);
    const worker = await spawnApp('worker', env.vars, { nodeArgs });
    apps.push(worker);
    await waitForCompletion(pollDb.sql, expected.size, { ...config, stallTimeoutMs: 120_000 });
    const verification = await verifyResults(pollDb.sql, expected);
    if (errors.length > 0) {
      verification.ok = false;
      verification.problems.unshift(...errors);
    }

    const rate = (phase: Phase) => phase.tasks / phase.seconds;
    const rows = [single, batch].map((phase) => [
      phase.label,
      fmt(phase.tasks),
      fmt(phase.requests),
      fmt(phase.seconds, 2),
      fmt(phase.requests / phase.seconds),
      fmt(rate(phase)),
      fmt(rate(phase) / rate(single), 1),
      `${fmt(percentile(phase.latencies, 50), 1)} / ${fmt(percentile(phase.latencies, 99), 1)}`,
    ]);
    console.log('');
    console.log(
      table([
        ['run', 'tasks', 'requests', 'seconds', 'requests/s', 'tasks/s', 'x single', 'p50 / p99 ms'],
        ...rows,
      ]),
    );
    for (const phase of [single, batch]) {
      console.log(`\n  CPU during "${phase.label}" (${fmt(phase.seconds, 2)} s):`);
      for (const figure of phase.cpu)
        console.log(
          `    ${figure.label.padEnd(32)} ${fmt(figure.seconds, 2).padStart(7)} s   ${fmt((100 * figure.seconds) / phase.seconds).padStart(4)} % of a core`,
        );
    }
    const goal = queue === 'redis' ? (rate(batch) >= GOAL ? 'PASS' : 'BELOW GOAL') : 'no goal in this mode';
    console.log(
      `\nbatch accepted ${fmt(rate(batch))} tasks/s (goal: ${fmt(GOAL)} in Redis mode): ${goal}; ` +
        `single-submit ${fmt(rate(single))} POST/s`,
    );
    console.log(
      verification.ok
        ? `verified: all ${fmt(expected.size)} accepted tasks (${fmt(accepted)} measured) COMPLETED with output a + b, no row missing or extra`
        : `WRONG RESULTS:\n  ${verification.problems.join('\n  ')}`,
    );
    return verification.ok ? 0 : 1;
  } finally {
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
    await pollDb.close();
    await env.cleanup();
    removeInterrupt();
  }
}

process.exitCode = await main().catch((error: unknown) => {
  console.error(error);
  return 1;
});
