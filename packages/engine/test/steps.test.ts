import { randomUUID } from 'node:crypto';
import { createDb, type DbClient, migrateDatabase, type TaskRow, TaskStore } from '@tasker/db';
import { InvalidStepError, NonDeterminismError } from '@tasker/tasks';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepRunner } from '../src/index.ts';

// The StepRunner over a real store: what a handler's ctx.step and ctx.sleep do within one run, and
// across runs of one task.

let env: TestEnv;
let client: DbClient;
let store: TaskStore;

beforeAll(async () => {
  env = createTestEnv();
  await migrateDatabase(env.databaseUrl);
  client = createDb(env.poolUrl, { max: 3, directUrl: env.databaseUrl });
  store = new TaskStore(client);
});

afterAll(async () => {
  await client?.close();
  await env?.cleanup();
});

async function task(): Promise<TaskRow> {
  const { row } = await store.insert({
    id: randomUUID(),
    name: 'sum_two_numbers',
    input: {},
    maxAttempts: 3,
  });
  return (await store.claim(row.id, 'w', 1)) as TaskRow;
}

const run = (row: TaskRow, signal = new AbortController().signal) => new StepRunner({ store }, row, signal);

describe('ctx.step', () => {
  it('runs each step once per task: a later run answers from the record, as JSON on every run', async () => {
    const row = await task();
    let calls = 0;
    const counted =
      <T>(value: T) =>
      () => {
        calls++;
        return value;
      };
    const first = run(row).context();
    const when = new Date('2026-01-02T03:04:05.000Z');
    // A Date goes through JSON: its text, on this run as on the next.
    expect(await first.step<unknown>('date', counted(when))).toBe('2026-01-02T03:04:05.000Z');
    expect(await first.step('nothing', counted(undefined))).toBeNull();
    expect(await first.step('text', counted('7'))).toBe('7');
    const second = run(row).context();
    expect(await second.step<unknown>('date', counted(new Date()))).toBe('2026-01-02T03:04:05.000Z');
    expect(await second.step<unknown>('nothing', counted(1))).toBeNull();
    expect(await second.step('text', counted('other'))).toBe('7');
    expect(calls).toBe(3);
  });

  it('a step that throws is recorded failed, and runs again on the next run', async () => {
    const row = await task();
    await expect(
      run(row)
        .context()
        .step('flaky', () => {
          throw new Error('not yet');
        }),
    ).rejects.toThrow('not yet');
    expect(await store.steps.list(row.id)).toMatchObject([
      { stepId: 'flaky', status: 'failed', error: { message: 'not yet', code: 'STEP_FAILED' } },
    ]);
    expect(
      await run(row)
        .context()
        .step('flaky', () => 'now'),
    ).toBe('now');
  });

  it('refuses a bad id, an id twice in one run, a result that is not JSON', async () => {
    const ctx = run(await task()).context();
    await expect(ctx.step('', () => 1)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.step('x'.repeat(201), () => 1)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.step('$mine', () => 1)).rejects.toThrow(/Tasker's own/);
    await ctx.step('once', () => 1);
    await expect(ctx.step('once', () => 2)).rejects.toThrow(/used twice in one run/);
    await expect(ctx.step('big', () => 10n)).rejects.toThrow(/not JSON/);
    await expect(ctx.step('nul', () => 'a\u0000b')).rejects.toThrow(/cannot be stored/);
  });

  it('another order than recorded: NonDeterminismError, kept even when the handler catches it', async () => {
    const row = await task();
    const first = run(row).context();
    await first.step('a', () => 1);
    await first.step('b', () => 2);
    const second = run(row);
    const error = await second
      .context()
      .step('b', () => 2)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonDeterminismError);
    expect(String((error as Error).message)).toMatch(
      /step "b" was step 2 of an earlier run; it is step 1 now/,
    );
    expect(second.nonDeterminism).toBe(error);
    // Caught and ignored: the next step throws it again.
    await expect(second.context().step('c', () => 3)).rejects.toBe(error);

    const third = run(row).context();
    await third.step('a', () => 1);
    await expect(third.step('c', () => 3)).rejects.toThrow(/step 2 was "b" in an earlier run; it is "c" now/);
  });
});

describe('ctx.sleep', () => {
  it('refuses more than 30 days, a negative or non-number time, an invalid date', async () => {
    const ctx = run(await task()).context();
    await expect(ctx.sleep(30 * 24 * 3600 * 1000 + 1)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.sleep(-1)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.sleep(Number.NaN)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.sleepUntil(new Date(Date.now() + 31 * 24 * 3600 * 1000))).rejects.toThrow(
      /at most 30 days/,
    );
    await expect(ctx.sleepUntil(new Date('nope'))).rejects.toBeInstanceOf(InvalidStepError);
  });

  it('under a second: slept in the worker and recorded completed', async () => {
    const row = await task();
    const started = Date.now();
    await run(row).context().sleep(150);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await store.steps.list(row.id)).toMatchObject([{ stepId: '$sleep:0', status: 'completed' }]);
  });

  it('longer: the run suspends at the sleep, which never returns; once over, it returns at once', async () => {
    const row = await task();
    const runner = run(row);
    const ctx = runner.context();
    await ctx.step('before', () => 1);
    let returned = false;
    void ctx.sleep(5000).then(() => {
      returned = true;
    });
    const suspension = await runner.suspended;
    expect(suspension).toMatchObject({ stepId: '$sleep:1', seq: 1 });
    expect((suspension.until?.getTime() ?? 0) - Date.now()).toBeGreaterThan(4000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(returned).toBe(false);

    // What the worker then records, with its end already passed (as when the waker woke it).
    const past = new Date(Date.now() - 10);
    const wake = { ...suspension, until: past, output: { until: past.toISOString() } };
    expect(await store.wait(row.id, wake)).toMatchObject({ status: 'WAITING' });
    const after = run(row).context();
    await after.step('before', () => 2);
    const started = Date.now();
    await after.sleep(5000); // the recorded end, not a new one: it is over
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await store.steps.list(row.id)).toMatchObject([
      { stepId: 'before', status: 'completed', output: 1 },
      { stepId: '$sleep:1', status: 'completed', output: { until: past.toISOString() } },
    ]);
  });
});
