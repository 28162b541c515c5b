/**
 * `pnpm bench:steps`: what durable steps and child tasks cost (issue 21), beside a plain task
 * measured in the same run on the same stack: the real worker (run from source with two task types
 * of the benchmark's own, `steps-worker.ts`) against the real PostgreSQL and Redis (Redis mode unless
 * BENCH_STEPS_QUEUE=postgres). Tasks are inserted into the table as a submission stores them (the
 * server's catalog does not know the benchmark's types; no HTTP is measured here, `pnpm bench` does
 * that), then run until every one, children included, is COMPLETED and its output checked.
 *
 * Phases, each on an emptied table:
 * 1. plain: BENCH_STEPS_TASKS `sum_two_numbers` tasks;
 * 2. ten steps: as many `bench_ten_steps` tasks (a + b in 10 `ctx.step`s);
 * 3. fan-out: BENCH_STEPS_PARENTS `bench_fan_out` parents of 100 `sum_two_numbers` children each
 *    (`ctx.runMany`): the parent runs, submits its children and waits holding no slot, then runs
 *    again once they are done and reads their outputs.
 * Per phase: wall time, tasks/s, and per task the committed transactions, rows written (inserted +
 * updated + deleted, pg_stat_database of the benchmark's database) and WAL bytes (the cluster's:
 * on a machine where nothing else writes). Derived: the cost of one step ((ten steps - plain) / 10)
 * and of one child (fan-out per child - plain). See bench/README.md ("pnpm bench:steps").
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDb } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp } from '@tasker/testing';
import {
  databaseCounters,
  enumVar,
  fmt,
  intVar,
  loadBenchConfig,
  percentile,
  sleep,
  table,
} from './common.ts';
import { onInterrupt } from './interrupt.ts';
import { STEPS } from './steps-types.ts';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'steps-worker.ts');
const CHILDREN = 100;

const config = loadBenchConfig();
const taskCount = intVar('BENCH_STEPS_TASKS', 2000, 1);
const parents = intVar('BENCH_STEPS_PARENTS', 10, 1);
const queue = enumVar('BENCH_STEPS_QUEUE', ['redis', 'postgres'], 'redis');

interface Phase {
  label: string;
  /** Tasks run, children included. */
  tasks: number;
  seconds: number;
  commits: number;
  written: number;
  walBytes: number;
  /** For the fan-out: each parent's time from insert to COMPLETED, ms, sorted. */
  parentMs?: number[];
}

async function main(): Promise<number> {
  const env = createTestEnv({
    WORKER_CONCURRENCY: String(config.workerConcurrency),
    DATABASE_POOL_SIZE: String(config.poolSize),
    WAKE_INTERVAL_MS: '50',
    ...(queue === 'postgres' ? { REDIS_URL: '' } : {}),
  });
  const database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));
  const apps: AppProcess[] = [];
  const removeInterrupt = onInterrupt(async () => {
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
    await env.cleanup();
  });
  const db = createDb(env.databaseUrl, { max: 2, name: 'bench-steps' });
  const { sql } = db;
  try {
    // The worker migrates the database as it starts.
    const worker = await spawnApp('worker', env.vars, {
      script: WORKER,
      nodeArgs: ['--import', 'tsx'],
      timeoutMs: 60_000,
    });
    apps.push(worker);
    console.log(
      `bench:steps: ${queue === 'redis' ? 'Redis' : 'PostgreSQL-only'} mode, 1 worker (concurrency ` +
        `${config.workerConcurrency}); ${taskCount} plain tasks, ${taskCount} tasks of ${STEPS} steps, ` +
        `${parents} parents of ${CHILDREN} children`,
    );

    const counters = () => databaseCounters(sql, database);

    /** Inserts `rows` (as a submission stores a task), waits until `total` tasks are COMPLETED, checks the outputs. */
    const phase = async (
      label: string,
      rows: { name: string; input: Record<string, number>; output: number }[],
      total: number,
    ): Promise<Phase> => {
      await sql`truncate tasks cascade`;
      const before = await counters();
      const started = performance.now();
      const ids = rows.map(() => randomUUID());
      for (let i = 0; i < rows.length; i += 1000) {
        const chunk = rows.slice(i, i + 1000);
        await sql`insert into tasks (id, name, input, concurrency_key)
          select id, name, input, 'default'
          from unnest(${ids.slice(i, i + 1000)}::uuid[], ${chunk.map((r) => r.name)}::text[],
                      ${chunk.map((r) => JSON.stringify(r.input))}::jsonb[]) as v(id, name, input)`;
      }
      let lastDone = -1;
      let lastProgress = performance.now();
      for (;;) {
        const [row] = await sql<{ done: number; failed: number }[]>`
          select count(*) filter (where status = 'COMPLETED')::int as done,
                 count(*) filter (where status in ('FAILED', 'CANCELLED', 'EXPIRED'))::int as failed
          from tasks`;
        const done = row?.done ?? 0;
        if ((row?.failed ?? 0) > 0) throw new Error(`${label}: ${row?.failed} task(s) did not complete`);
        if (done >= total) break;
        if (done !== lastDone) {
          lastDone = done;
          lastProgress = performance.now();
        } else if (performance.now() - lastProgress > config.stallTimeoutMs) {
          throw new Error(`${label}: no progress for ${config.stallTimeoutMs} ms (${done} of ${total} done)`);
        }
        await sleep(config.pollMs);
      }
      const seconds = (performance.now() - started) / 1000;
      const after = await counters();
      const outputs = await sql<{ id: string; output: unknown; ms: number }[]>`
        select id, output, extract(epoch from finished_at - created_at) * 1000 as ms
        from tasks where id = any(${ids}::uuid[])`;
      const byId = new Map(outputs.map((o) => [o.id, o]));
      rows.forEach((r, i) => {
        const got = byId.get(ids[i] ?? '');
        if (got?.output !== r.output)
          throw new Error(
            `${label}: task ${ids[i]} output ${JSON.stringify(got?.output)}, expected ${r.output}`,
          );
      });
      return {
        label,
        tasks: total,
        seconds,
        commits: after.commits - before.commits,
        written: after.written - before.written,
        walBytes: Number(after.wal - before.wal),
        parentMs: outputs.map((o) => Number(o.ms)).sort((x, y) => x - y),
      };
    };

    const sums = (name: string) =>
      Array.from({ length: taskCount }, (_, i) => ({ name, input: { a: i, b: 7 }, output: i + 7 }));
    // Warm-up (not measured): every type once, so that the worker's code and statements are warm.
    await phase(
      'warm-up',
      [...sums('sum_two_numbers').slice(0, 50), ...sums('bench_ten_steps').slice(0, 50)],
      100,
    );
    await phase('warm-up', [{ name: 'bench_fan_out', input: { n: 10, a: 1 }, output: 10 + 45 }], 11);

    const plain = await phase('plain (sum_two_numbers)', sums('sum_two_numbers'), taskCount);
    const steps = await phase(`${STEPS} steps (bench_ten_steps)`, sums('bench_ten_steps'), taskCount);
    const fanOut = await phase(
      `fan-out (${parents} x ${CHILDREN} children)`,
      Array.from({ length: parents }, (_, i) => ({
        name: 'bench_fan_out',
        input: { n: CHILDREN, a: i },
        output: CHILDREN * i + (CHILDREN * (CHILDREN - 1)) / 2,
      })),
      parents * (CHILDREN + 1),
    );

    const per = (p: Phase, n: number) => ({
      ms: (p.seconds * 1000) / n,
      commits: p.commits / n,
      written: p.written / n,
      wal: p.walBytes / n,
    });
    const rows = [
      ['phase', 'tasks', 'seconds', 'tasks/s', 'commits/task', 'rows written/task', 'WAL bytes/task'],
    ];
    for (const p of [plain, steps, fanOut]) {
      const unit = per(p, p.tasks);
      rows.push([
        p.label,
        fmt(p.tasks),
        fmt(p.seconds, 2),
        fmt(p.tasks / p.seconds),
        fmt(unit.commits, 2),
        fmt(unit.written, 1),
        fmt(unit.wal),
      ]);
    }
    console.log(`\n${table(rows)}\n`);

    const base = per(plain, plain.tasks);
    const tenSteps = per(steps, steps.tasks);
    const children = per(fanOut, parents * CHILDREN);
    const derived = [
      ['cost of', 'ms of wall time', 'commits', 'rows written', 'WAL bytes'],
      [
        `one step ((${STEPS}-step task - plain) / ${STEPS})`,
        fmt((tenSteps.ms - base.ms) / STEPS, 3),
        fmt((tenSteps.commits - base.commits) / STEPS, 2),
        fmt((tenSteps.written - base.written) / STEPS, 1),
        fmt((tenSteps.wal - base.wal) / STEPS),
      ],
      [
        'one child (fan-out per child - plain)',
        fmt(children.ms - base.ms, 3),
        fmt(children.commits - base.commits, 2),
        fmt(children.written - base.written, 1),
        fmt(children.wal - base.wal),
      ],
      [
        'a plain task (for scale)',
        fmt(base.ms, 3),
        fmt(base.commits, 2),
        fmt(base.written, 1),
        fmt(base.wal),
      ],
    ];
    console.log(`${table(derived)}\n`);
    const parentMs = (fanOut.parentMs ?? []).slice(-parents);
    console.log(
      `a parent of ${CHILDREN} children, insert to COMPLETED: p50 ${fmt(percentile(parentMs, 50))} ms, ` +
        `max ${fmt(parentMs.at(-1) ?? Number.NaN)} ms (${parents} parents at once, concurrency ${config.workerConcurrency})`,
    );
    console.log('verified: every task, children included, COMPLETED with the expected output');
    return 0;
  } finally {
    removeInterrupt();
    await Promise.all(apps.map((app) => app.stop('SIGTERM')));
    await db.close();
    await env.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
