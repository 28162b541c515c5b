import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TaskRow, taskSteps, tasks } from '@tasker/db';
import { type AppProcess, spawnApp, testMode, waitFor } from '@tasker/testing';
import { eq } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

// Durable steps (issue 21), in the suite's queue mode (TEST_MODE): the real worker, run from source
// with task types of its own (fixtures/steps-worker.ts) whose steps mark a file per side effect.

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'steps-worker.ts');
// Short lock and wake periods, so that a dead worker's task and a sleep's end come within a test's patience.
const FAST = {
  WORKER_LOCK_MS: '2000',
  SWEEP_INTERVAL_MS: '500',
  SWEEP_GRACE_MS: '1000',
  WAKE_INTERVAL_MS: '200',
};

let harness: Harness | undefined;
const workers: AppProcess[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tasker-steps-'));
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function startWorker(h: Harness, vars: Record<string, string> = {}): Promise<AppProcess> {
  const worker = await spawnApp(
    'worker',
    { ...h.env.vars, ...vars },
    { script: FIXTURE, nodeArgs: ['--import', 'tsx'], timeoutMs: 30_000 },
  );
  workers.push(worker);
  return worker;
}

/** A task of one of the fixture's types, inserted as a submission would (the catalog does not know them). */
async function insert(h: Harness, name: string, input: Record<string, unknown>, maxAttempts: number) {
  const id = randomUUID();
  await h.db.db.insert(tasks).values({ id, name, input, maxAttempts });
  return id;
}

/** Each mark of the file, counted. */
function marks(file: string): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!existsSync(file)) return counts;
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean))
    counts[line] = (counts[line] ?? 0) + 1;
  return counts;
}

async function until(h: Harness, id: string, status: string, timeoutMs = 30_000): Promise<TaskRow> {
  return waitFor(
    async () => {
      const row = await h.store.get(id);
      return row?.status === status ? row : undefined;
    },
    { timeoutMs, what: `task ${id} ${status}` },
  );
}

describe(`durable steps (${testMode})`, () => {
  it('a worker SIGKILLed between step 2 and 3: the next run repeats neither finished step', async () => {
    harness = await Harness.start(FAST);
    const file = path.join(dir, 'effects');
    const id = await insert(harness, 'test_three_steps', { file, crash: true }, 3);
    const first = await startWorker(harness);
    await first.exited; // its handler killed it, after steps one and two
    expect(marks(file)).toEqual({ one: 1, two: 1, killed: 1 });
    expect((await harness.store.get(id))?.status).toBe('RUNNING');

    await startWorker(harness);
    const done = await until(harness, id, 'COMPLETED');
    expect(done.output).toEqual({ one: 1, two: 'zwei', three: 3 });
    expect(marks(file)).toEqual({ one: 1, two: 1, killed: 1, three: 1 });
    const record = await harness.api.get('default', id);
    expect(record.steps?.map((s) => [s.id, s.seq, s.status, s.preview])).toEqual([
      ['one', 0, 'completed', '1'],
      ['two', 1, 'completed', '"zwei"'],
      ['three', 2, 'completed', '3'],
    ]);
  });

  it('a 2-second sleep holds no slot: a worker of concurrency 1 runs another task meanwhile, then resumes it', async () => {
    harness = await Harness.start({ ...FAST, WORKER_CONCURRENCY: '1' });
    const file = path.join(dir, 'effects');
    await startWorker(harness);
    const sleeper = await insert(harness, 'test_sleeper', { file, ms: 2000 }, 1);
    const waiting = await until(harness, sleeper, 'WAITING');
    expect(waiting.waitingFor?.kind).toBe('time');
    const view = await harness.api.get('default', sleeper);
    expect(view.waitingFor).toEqual({ kind: 'time', until: waiting.runAfter?.toISOString() });
    expect(view.steps?.map((s) => [s.id, s.status])).toEqual([
      ['before', 'completed'],
      ['$sleep:1', 'waiting'],
    ]);
    // No handout: the waiting task holds no slot.
    const handouts = await harness.db.sql`select task_id from task_handouts where task_id = ${sleeper}::uuid`;
    expect(handouts).toHaveLength(0);

    const sum = await harness.submit('sum_two_numbers', { a: 2, b: 3 }, 1);
    const summed = await until(harness, sum, 'COMPLETED', 10_000);
    expect(summed.output).toBe(5);
    // The sum ran in the only slot while the sleeper slept.
    expect((await harness.store.get(sleeper))?.status).toBe('WAITING');

    const done = await until(harness, sleeper, 'COMPLETED');
    const output = done.output as { before: number; after: number };
    expect(output.after - output.before).toBeGreaterThanOrEqual(2000);
    expect(marks(file)).toEqual({ before: 1, after: 1 });
    expect(done.waitingFor).toBeNull();
    const steps = await harness.db.db.select().from(taskSteps).where(eq(taskSteps.taskId, sleeper));
    expect(steps.map((s) => [s.stepId, s.status]).sort()).toEqual([
      ['$sleep:1', 'completed'],
      ['after', 'completed'],
      ['before', 'completed'],
    ]);
  });

  it('a worker SIGKILLed while its task sleeps: another worker resumes it when the time comes', async () => {
    harness = await Harness.start(FAST);
    const file = path.join(dir, 'effects');
    const first = await startWorker(harness);
    const sleeper = await insert(harness, 'test_sleeper', { file, ms: 2000 }, 1);
    await until(harness, sleeper, 'WAITING');
    await first.stop('SIGKILL');
    await startWorker(harness);
    await until(harness, sleeper, 'COMPLETED');
    expect(marks(file)).toEqual({ before: 1, after: 1 });
  });

  it('the leader SIGKILLed while a task sleeps: the worker that leads next wakes it (only a leader wakes)', async () => {
    harness = await Harness.start(FAST);
    const file = path.join(dir, 'effects');
    const leads = (w: AppProcess) => w.output().includes('dispatcher: leading');
    const first = await startWorker(harness);
    await waitFor(() => leads(first), { timeoutMs: 10_000, what: 'a leader' });
    const second = await startWorker(harness);
    const sleeper = await insert(harness, 'test_sleeper', { file, ms: 2000 }, 1);
    await until(harness, sleeper, 'WAITING');
    expect(leads(second)).toBe(false);
    await first.stop('SIGKILL');
    await until(harness, sleeper, 'COMPLETED', 15_000);
    expect(leads(second)).toBe(true);
    expect(marks(file)).toEqual({ before: 1, after: 1 });
  });

  it('a handler that reaches its steps in another order fails with NON_DETERMINISM, not retried again', async () => {
    harness = await Harness.start(FAST);
    const file = path.join(dir, 'effects');
    await startWorker(harness);
    const id = await insert(harness, 'test_flipper', { file }, 3);
    const failed = await until(harness, id, 'FAILED');
    expect(failed.attempts).toBe(2); // attempts were left: the error is not one another attempt can fix
    expect(failed.error).toMatchObject({ code: 'NON_DETERMINISM', name: 'NonDeterminismError' });
    expect(failed.error?.message).toMatch(/step "b" was step 2 of an earlier run; it is step 1 now/);
    // The first attempt's two steps ran once; the second attempt ran none.
    expect(marks(file)).toEqual({ a: 1, b: 1 });
  });

  it('cancelling a WAITING task: CANCELLED at once, and it never resumes', async () => {
    harness = await Harness.start(FAST);
    const file = path.join(dir, 'effects');
    await startWorker(harness);
    const sleeper = await insert(harness, 'test_sleeper', { file, ms: 60_000 }, 1);
    await until(harness, sleeper, 'WAITING');
    const cancelled = await harness.api.cancel('default', sleeper);
    expect(cancelled).toMatchObject({ status: 'CANCELLED', waitingFor: null, error: { code: 'CANCELLED' } });
    const row = await harness.store.get(sleeper);
    expect(row?.waitingFor).toBeNull();
    // A second cancel is a conflict, as for any finished task.
    await expect(harness.api.cancel('default', sleeper)).rejects.toThrow(/already CANCELLED/);
    // The waker finds nothing to wake (its sleep's end is a minute away anyway): it stays CANCELLED.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await harness.store.get(sleeper))?.status).toBe('CANCELLED');
    expect(marks(file)).toEqual({ before: 1 });
  });
});
