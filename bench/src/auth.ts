/**
 * What identity costs: submit throughput over REST (POST /run-task, BENCH_CONCURRENCY in flight,
 * one server process, no worker) with AUTH_MODE=disabled and with AUTH_MODE=required and a key
 * (rate limit off, so that only the key check is measured). Rounds alternate off/on to spread the
 * machine's noise over both; the figure is the median of each. Target: auth costs at most 10 %.
 */

import { Agent, request } from 'node:http';
import { ApiKeyStore, createDb, migrateDatabase } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp } from '@tasker/testing';
import { loadBenchConfig, runBounded, taskParameters } from './common.ts';
import { onInterrupt } from './interrupt.ts';

const TASKS = Number(process.env.BENCH_AUTH_TASKS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_AUTH_ROUNDS ?? 3);

function poster(concurrency: number, key: string | undefined) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  return (url: string, body: string) =>
    new Promise<number>((resolve, reject) => {
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      };
      if (key) headers.authorization = `Bearer ${key}`;
      const req = request(url, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
}

async function round(mode: 'disabled' | 'required'): Promise<number> {
  const config = loadBenchConfig();
  const env = createTestEnv({
    AUTH_MODE: mode,
    RATE_LIMIT_PER_MINUTE: '0',
    DATABASE_POOL_SIZE: String(config.poolSize),
  });
  const apps: AppProcess[] = [];
  const removeInterrupt = onInterrupt(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    await env.cleanup();
  });
  try {
    await migrateDatabase(env.databaseUrl);
    let key: string | undefined;
    if (mode === 'required') {
      const db = createDb(env.databaseUrl, { max: 1 });
      key = (
        await new ApiKeyStore(db.db).create({ tenantId: 'bench', name: 'bench', scopes: ['tasks:write'] })
      ).key;
      await db.close();
    }
    const server = await spawnApp('server', env.vars);
    apps.push(server);
    const post = poster(config.concurrency, key);
    const url = `${server.url}/run-task`;
    const send = (i: number) =>
      post(url, JSON.stringify({ task_name: 'sum_two_numbers', task_parameters: taskParameters(0, i) })).then(
        (status) => {
          if (status !== 200) throw new Error(`run-task answered ${status}`);
        },
      );
    await runBounded(500, config.concurrency, send); // warm-up
    const began = performance.now();
    await runBounded(TASKS, config.concurrency, (i) => send(1000 + i));
    return TASKS / ((performance.now() - began) / 1000);
  } finally {
    await Promise.all(apps.map((app) => app.stop()));
    await env.cleanup();
    removeInterrupt();
  }
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

export async function runAuthBench(): Promise<void> {
  console.log(
    `\nIdentity cost: submit throughput over REST, 1 server, ${TASKS.toLocaleString('en-US')} tasks per round, ${ROUNDS} rounds each`,
  );
  const off: number[] = [];
  const on: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    off.push(await round('disabled'));
    on.push(await round('required'));
  }
  const f = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');
  console.log(
    `  AUTH_MODE=disabled             ${median(off).toFixed(0).padStart(6)} tasks/s (rounds: ${f(off)})`,
  );
  console.log(
    `  AUTH_MODE=required (a key)     ${median(on).toFixed(0).padStart(6)} tasks/s (rounds: ${f(on)})`,
  );
  const cost = 1 - median(on) / median(off);
  console.log(
    `  auth costs ${(100 * cost).toFixed(1)} % (target <= 10 %) → ${cost <= 0.1 ? 'PASS' : 'FAIL'}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runAuthBench().catch((error: unknown) => {
    console.error('auth benchmark failed:', error);
    process.exitCode = 1;
  });
}
