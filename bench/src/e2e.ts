import { mkdirSync } from 'node:fs';
import { createDb } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp } from '@tasker/testing';
import { z } from 'zod';
import {
  type BenchConfig,
  type CompletionResult,
  MEASURED_BASE,
  percentile,
  runBounded,
  taskParameters,
  type Verification,
  verifyResults,
  WARMUP_BASE,
  waitForCompletion,
} from './common.ts';
import { type CpuFigure, fixedGroup, postgresBackends, redisServers, startCpuWindow } from './cpu.ts';
import { fetchClient, nodeHttpClient, type PostJson } from './http-client.ts';
import { onInterrupt } from './interrupt.ts';

const runTaskResponse = z.object({ task_uuid: z.uuid() });

/** Where the queue lives: Redis (REDIS_URL set), or PostgreSQL only (REDIS_URL empty). */
export type QueueMode = 'redis' | 'postgres';

export interface E2eResult {
  mode: QueueMode;
  servers: number;
  workers: number;
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
  /** Seconds from the first POST until the last answer. */
  submitSeconds: number;
  /** Latency of the measured POSTs, in ms. */
  latency: { p50: number; p99: number; max: number };
  /** POSTs that did not answer 200 with a task id. */
  submitErrors: string[];
  completion: CompletionResult;
  verification: Verification;
  cpu: CpuFigure[];
  machineBusy: number | undefined;
  /** Warnings and errors the processes logged. */
  logProblems: string[];
}

export interface Submitter {
  /** Accepted tasks: task id → a + b. */
  expected: Map<string, number>;
  /** What went wrong with the POSTs that did not answer 200 with a task id. */
  submitErrors: string[];
  /** Submits `count` tasks (parameters from `base`), `concurrency` in flight; returns each POST's latency in ms. */
  submit(base: number, count: number): Promise<number[]>;
}

/** `sum_two_numbers` tasks over REST (`POST /run-task`), spread round-robin over `urls`. */
export function submitter(post: PostJson, urls: readonly string[], concurrency: number): Submitter {
  const expected = new Map<string, number>();
  const submitErrors: string[] = [];
  const submit = async (base: number, count: number): Promise<number[]> => {
    const latencies: number[] = new Array(count);
    await runBounded(count, concurrency, async (index) => {
      const { a, b } = taskParameters(base, index);
      const body = JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: { a, b } });
      const url = urls[index % urls.length] ?? '';
      const sent = performance.now();
      try {
        const { status, text } = await post(url, body);
        latencies[index] = performance.now() - sent;
        if (status !== 200) {
          submitErrors.push(`HTTP ${status}: ${text.slice(0, 200)}`);
          return;
        }
        const parsed = runTaskResponse.safeParse(JSON.parse(text));
        if (!parsed.success) {
          submitErrors.push(`unexpected answer: ${text.slice(0, 200)}`);
          return;
        }
        expected.set(parsed.data.task_uuid, a + b);
      } catch (error) {
        latencies[index] = performance.now() - sent;
        submitErrors.push(`request failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    return latencies;
  };
  return { expected, submitErrors, submit };
}

/** pino lines at level warn (40) or above. */
function problemsIn(kind: string, output: string): string[] {
  return output
    .split('\n')
    .filter((line) => /"level":(4|5|6)\d/.test(line))
    .map((line) => `${kind}: ${line.slice(0, 300)}`);
}

/**
 * Tasker as deployed: `servers` server processes and `workers` worker processes (the built
 * apps/<kind>/dist/main.js) against the real PostgreSQL and Redis. Tasks go in over REST
 * (`POST /run-task`, Node's fetch unless BENCH_CLIENT=http, `concurrency` requests in flight, spread round-robin over the
 * servers); completion is read from PostgreSQL with one count query every `pollMs`.
 */
export async function runE2e(
  config: BenchConfig,
  servers: number,
  workers: number,
  mode: QueueMode = 'redis',
): Promise<E2eResult> {
  const env = createTestEnv({
    WORKER_CONCURRENCY: String(config.workerConcurrency),
    DATABASE_POOL_SIZE: String(config.poolSize),
    ...(mode === 'postgres' ? { REDIS_URL: '' } : {}),
  });
  // Diagnosis: each process writes a V8 CPU profile into profileDir when it exits.
  const nodeArgs = config.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${config.profileDir}`] : [];
  if (config.profileDir) mkdirSync(config.profileDir, { recursive: true });
  const database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));
  const apps: AppProcess[] = [];
  const stopAll = async () => {
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
  };
  const removeInterrupt = onInterrupt(async () => {
    await stopAll();
    await env.cleanup();
  });
  const pollDb = createDb(env.databaseUrl, { max: 1, name: 'bench-poller' });

  try {
    // One at a time: each migrates the new database at start-up (they would wait on one lock anyway).
    const serverApps: AppProcess[] = [];
    for (let i = 0; i < servers; i++) {
      const app = await spawnApp('server', env.vars, { nodeArgs });
      apps.push(app);
      serverApps.push(app);
    }
    const workerApps: AppProcess[] = [];
    for (let i = 0; i < workers; i++) {
      const app = await spawnApp('worker', env.vars, { nodeArgs });
      apps.push(app);
      workerApps.push(app);
    }
    if (config.profileDir) {
      const pids = (apps: AppProcess[]) => apps.map((app) => app.child.pid).join(', ');
      console.log(
        `  CPU profiles go to ${config.profileDir} (CPU.*.<pid>.*.cpuprofile): server pid ${pids(serverApps)}, worker pid ${pids(workerApps)}`,
      );
    }
    const urls = serverApps.map((app) => {
      if (!app.url) throw new Error('server started without telling its URL');
      return `${app.url}/run-task`;
    });

    const post = config.client === 'fetch' ? fetchClient : nodeHttpClient(config.concurrency);
    const { expected, submitErrors, submit } = submitter(post, urls, config.concurrency);

    if (config.warmup > 0) {
      await submit(WARMUP_BASE, config.warmup);
      await waitForCompletion(pollDb.sql, expected.size, config);
    }
    const warmupAccepted = expected.size;

    const cpu = startCpuWindow([
      fixedGroup('bench process (HTTP client)', [process.pid]),
      fixedGroup(
        servers > 1 ? `server processes (${servers})` : 'server process',
        serverApps.map((a) => a.child.pid),
      ),
      fixedGroup(
        workers > 1 ? `worker processes (${workers})` : 'worker process',
        workerApps.map((a) => a.child.pid),
      ),
      postgresBackends('postgres backends (this DB)', database),
      redisServers('redis-server'),
    ]);
    const started = performance.now();
    const latencies = await submit(MEASURED_BASE, config.tasks);
    const submitted = performance.now();
    const accepted = expected.size - warmupAccepted;
    const completion = await waitForCompletion(pollDb.sql, warmupAccepted + accepted, config);
    const usage = cpu.stop();

    const seconds = (completion.doneAt - started) / 1000;
    const verification = await verifyResults(pollDb.sql, expected);
    if (submitErrors.length > 0) {
      verification.ok = false;
      verification.problems.unshift(`${submitErrors.length} submissions failed, e.g. ${submitErrors[0]}`);
    }
    const sorted = latencies.filter((v) => v !== undefined).sort((x, y) => x - y);
    return {
      mode,
      servers,
      workers,
      tasks: config.tasks,
      seconds,
      // Only accepted tasks count as done work.
      tasksPerSecond: accepted / seconds,
      submitSeconds: (submitted - started) / 1000,
      latency: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN },
      submitErrors,
      completion,
      verification,
      cpu: usage.groups,
      machineBusy: usage.machineBusy,
      logProblems: [
        ...serverApps.flatMap((app) => problemsIn('server', app.output())),
        ...workerApps.flatMap((app) => problemsIn('worker', app.output())),
      ],
    };
  } finally {
    await stopAll();
    await pollDb.close();
    await env.cleanup();
    removeInterrupt();
  }
}
