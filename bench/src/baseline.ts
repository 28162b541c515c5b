import { randomUUID } from 'node:crypto';
import { createDb, migrateDatabase, type NewTaskRow, TaskStore, tasks } from '@tasker/db';
import { createRedis, jobOptions, QUEUE_NAME } from '@tasker/engine';
import { createTestEnv } from '@tasker/testing';
import { type Job, Queue, Worker } from 'bullmq';
import { eq, sql } from 'drizzle-orm';
import { z } from 'zod';
import {
  type BenchConfig,
  type CompletionResult,
  MEASURED_BASE,
  runBounded,
  taskParameters,
  type Verification,
  verifyResults,
  WARMUP_BASE,
  waitForCompletion,
} from './common.ts';
import { type CpuFigure, fixedGroup, postgresBackends, redisServers, startCpuWindow } from './cpu.ts';
import { onInterrupt } from './interrupt.ts';

/** The baseline's job payload: the task id (as in Tasker) plus the operands, so that one UPDATE suffices. */
const baselineJobSchema = z.object({ taskId: z.uuid(), a: z.number(), b: z.number() });
type BaselineJob = z.output<typeof baselineJobSchema>;

const TASK_NAME = 'sum_two_numbers';

export interface BaselineResult {
  tasks: number;
  seconds: number;
  tasksPerSecond: number;
  /** Seconds from the first submission until the last one was acknowledged. */
  submitSeconds: number;
  completion: CompletionResult;
  verification: Verification;
  cpu: CpuFigure[];
  machineBusy: number | undefined;
}

/**
 * The substrate with no HTTP, in this process: the same PostgreSQL client, Drizzle schema, BullMQ
 * and ioredis as Tasker. Producer: INSERT of the row (TaskStore.insert, as the server does) then
 * one BullMQ add with Tasker's own job options; consumer: a BullMQ Worker with the real worker's
 * concurrency and lock settings that computes a + b and records it with one UPDATE.
 */
export async function runBaseline(config: BenchConfig): Promise<BaselineResult> {
  const env = createTestEnv();
  const removeInterrupt = onInterrupt(() => env.cleanup());
  await migrateDatabase(env.databaseUrl);
  const database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));

  const producerDb = createDb(env.databaseUrl, { max: config.poolSize, name: 'bench-baseline-producer' });
  const workerDb = createDb(env.databaseUrl, { max: config.poolSize, name: 'bench-baseline-worker' });
  const pollDb = createDb(env.databaseUrl, { max: 1, name: 'bench-poller' });
  // Same connection kinds as Tasker: the producer fails fast (server), the worker waits (worker).
  const producerRedis = createRedis(env.redisUrl, 'command', 'bench-baseline-producer');
  const workerRedis = createRedis(env.redisUrl, 'blocking', 'bench-baseline-worker');
  const store = new TaskStore(producerDb);
  const queue = new Queue<BaselineJob>(QUEUE_NAME, { connection: producerRedis, prefix: env.prefix });

  // Prepared once, as Tasker's TaskStore does: drizzle's query building costs more than the query.
  const complete = workerDb.db
    .update(tasks)
    .set({
      status: 'COMPLETED',
      output: sql`${sql.placeholder('output')}::jsonb`,
      attempts: 1,
      startedAt: sql`now()`,
      finishedAt: sql`now()`,
      updatedAt: sql`now()`,
    })
    .where(eq(tasks.id, sql.placeholder('id')))
    .prepare('bench_complete');
  const worker = new Worker<BaselineJob>(
    QUEUE_NAME,
    async (job: Job<BaselineJob>) => {
      const { taskId, a, b } = baselineJobSchema.parse(job.data);
      await complete.execute({ id: taskId, output: JSON.stringify(a + b) });
    },
    {
      connection: workerRedis,
      prefix: env.prefix,
      concurrency: config.workerConcurrency,
      lockDuration: 30_000,
      stalledInterval: 30_000,
      maxStalledCount: 2,
    },
  );
  worker.on('error', (error) => console.error('baseline worker error:', error));
  await worker.waitUntilReady();
  // The producer's connection is the fail-fast kind (no offline queue): start once it is up.
  await queue.waitUntilReady();

  const expected = new Map<string, number>();
  const newRow = (base: number, index: number): { row: NewTaskRow; a: number; b: number } => {
    const { a, b } = taskParameters(base, index);
    // maxAttempts 1: sum_two_numbers' own retry policy, as the server records it.
    return { row: { id: randomUUID(), name: TASK_NAME, input: { a, b }, maxAttempts: 1 }, a, b };
  };

  /** Submits `count` tasks the configured way; resolves when every submission is acknowledged. */
  const submit = async (base: number, count: number) => {
    if (config.baselineMode === 'single') {
      await runBounded(count, config.concurrency, async (index) => {
        const { row, a, b } = newRow(base, index);
        const { row: inserted } = await store.insert(row);
        await queue.add(TASK_NAME, { taskId: inserted.id, a, b }, jobOptions(inserted));
        expected.set(inserted.id, a + b);
      });
      return;
    }
    // Bulk: one multi-row INSERT and one addBulk per chunk, a few chunks in flight.
    const chunk = config.bulkChunk;
    const inFlight = Math.max(2, Math.ceil(config.concurrency / chunk));
    await runBounded(Math.ceil(count / chunk), inFlight, async (c) => {
      const items = Array.from({ length: Math.min(chunk, count - c * chunk) }, (_, i) =>
        newRow(base, c * chunk + i),
      );
      const byId = new Map(items.map((item) => [item.row.id, item]));
      const inserted = await producerDb.db
        .insert(tasks)
        .values(items.map((item) => item.row))
        .returning();
      const now = Date.now();
      await queue.addBulk(
        inserted.map((row) => {
          const item = byId.get(row.id);
          if (!item) throw new Error(`INSERT returned an unknown row ${row.id}`);
          return {
            name: TASK_NAME,
            data: { taskId: row.id, a: item.a, b: item.b },
            opts: jobOptions(row, now),
          };
        }),
      );
      for (const item of items) expected.set(item.row.id, item.a + item.b);
    });
  };

  try {
    if (config.warmup > 0) {
      await submit(WARMUP_BASE, config.warmup);
      await waitForCompletion(pollDb.sql, config.warmup, config);
    }

    const cpu = startCpuWindow([
      fixedGroup('bench process (producer + worker)', [process.pid]),
      postgresBackends('postgres backends (this DB)', database),
      redisServers('redis-server'),
    ]);
    const started = performance.now();
    await submit(MEASURED_BASE, config.tasks);
    const submitted = performance.now();
    const completion = await waitForCompletion(pollDb.sql, config.warmup + config.tasks, config);
    const usage = cpu.stop();

    const seconds = (completion.doneAt - started) / 1000;
    const verification = await verifyResults(pollDb.sql, expected);
    return {
      tasks: config.tasks,
      seconds,
      tasksPerSecond: config.tasks / seconds,
      submitSeconds: (submitted - started) / 1000,
      completion,
      verification,
      cpu: usage.groups,
      machineBusy: usage.machineBusy,
    };
  } finally {
    await worker.close();
    await queue.close();
    producerRedis.disconnect();
    workerRedis.disconnect();
    await Promise.all([producerDb.close(), workerDb.close(), pollDb.close()]);
    await env.cleanup();
    removeInterrupt();
  }
}
