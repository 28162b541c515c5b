import { randomUUID } from 'node:crypto';
import {
  createDb,
  type DbClient,
  migrateDatabase,
  type Suspension,
  type TaskRow,
  TaskStore,
} from '@tasker/db';
import { InvalidStepError, NonDeterminismError, WaitTokenTimeoutError } from '@tasker/tasks';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepRunner } from '../src/index.ts';
import type { LifecycleResources } from '../src/lifecycle/resources.ts';
import { wait, wakeDue } from '../src/lifecycle/wait.ts';
import { toStepView } from '../src/view.ts';

// ctx.createToken and ctx.waitForToken over a real store, within one run and across runs of one
// task: bounds, the handler's order, what a suspension says, and what a later run is answered.

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

const PUBLIC_URL = 'https://tasker.example.com';
const run = (row: TaskRow) =>
  new StepRunner(
    { store, config: { openai: { model: 'm' }, publicUrl: PUBLIC_URL } },
    row,
    new AbortController().signal,
  );

/** Whether a promise is still pending a moment later (a suspended wait never settles). */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  promise.catch(() => {});
  return (await Promise.race([promise, new Promise((r) => setTimeout(() => r(marker), 100))])) === marker;
}

describe('ctx.createToken and ctx.waitForToken', () => {
  it('bounds the timeout: 1 s to 30 days, a whole number of ms', async () => {
    const ctx = run(await task()).context();
    for (const timeoutMs of [999, 0, -1, 1500.5, 31 * 24 * 3600_000, Number.NaN])
      await expect(ctx.createToken({ timeoutMs })).rejects.toBeInstanceOf(InvalidStepError);
    await expect(ctx.waitForToken({ timeoutMs: 'soon' as unknown as number })).rejects.toBeInstanceOf(
      InvalidStepError,
    );
    expect(await ctx.createToken({ timeoutMs: 30 * 24 * 3600_000 })).toMatchObject({
      id: expect.any(String),
    });
  });

  it('a token is a step: its URL is PUBLIC_URL + /token-callbacks/ + 43 characters, and a later run gets the same token', async () => {
    const row = await task();
    const made = await run(row).context().createToken({ timeoutMs: 60_000 });
    expect(made.url).toMatch(/^https:\/\/tasker\.example\.com\/token-callbacks\/[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(made.timeoutAt) - Date.now()).toBeGreaterThan(55_000);
    expect(await run(row).context().createToken({ timeoutMs: 1000 })).toEqual(made);
    // The task record's step shows the token's id and timeout, not its URL.
    const [step] = await store.steps.list(row.id);
    expect(step?.stepId).toBe('$token:0');
    expect(JSON.parse(toStepView(step ?? ({} as never)).preview ?? 'null')).toEqual({
      id: made.id,
      timeoutAt: made.timeoutAt,
    });
  });

  it('an open token suspends the run (waiting_for token, until its timeout); completed, a later run returns its output', async () => {
    const row = await task();
    const first = run(row);
    const ctx = first.context();
    const token = await ctx.createToken({ timeoutMs: 60_000 });
    const waited = ctx.waitForToken(token);
    const suspension: Suspension = await first.suspended;
    expect(suspension).toMatchObject({
      stepId: '$token-wait:1',
      seq: 1,
      waitingFor: { kind: 'token', token: token.id, until: token.timeoutAt },
    });
    expect(suspension.until?.toISOString()).toBe(token.timeoutAt);
    expect(await pending(waited)).toBe(true);
    await store.tokens.complete({ id: token.id }, { approved: true });
    const later = run(row).context();
    const again = await later.createToken({ timeoutMs: 60_000 });
    expect(await later.waitForToken(again)).toEqual({ approved: true });
  });

  it('completed while the run still ran: the wait commits, ends now, and is left to the waker (the attempt still holds its job)', async () => {
    const row = await task();
    const first = run(row);
    const ctx = first.context();
    const token = await ctx.createToken({ timeoutMs: 60_000 });
    void ctx.waitForToken(token);
    const suspension = await first.suspended;
    await store.tokens.complete({ id: token.id }, 'early'); // the task is RUNNING: nothing to wake yet
    const resources = { store } as unknown as LifecycleResources;
    const waited = await wait(resources, row, suspension);
    expect(waited).toMatchObject({ id: row.id, status: 'WAITING' });
    expect(waited?.runAfter?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await wakeDue(resources)).toBeGreaterThanOrEqual(1);
    expect(await store.get(row.id)).toMatchObject({ status: 'PENDING', waitingFor: null });
  });

  it('a wait tried again after its WAITING committed (the look at the token failed) still ends the wait of a completed token', async () => {
    const row = await task();
    const first = run(row);
    const ctx = first.context();
    const token = await ctx.createToken({ timeoutMs: 3_600_000 });
    void ctx.waitForToken(token);
    const suspension = await first.suspended;
    await store.tokens.complete({ id: token.id }, 'early'); // RUNNING: nothing to wake yet
    // The first try committed WAITING, then failed before it looked at the token.
    expect(await store.wait(row.id, suspension)).toMatchObject({ status: 'WAITING' });
    const resources = { store } as unknown as LifecycleResources;
    const waited = await wait(resources, row, suspension); // persist's second try
    expect(waited).toMatchObject({ id: row.id, status: 'WAITING' });
    expect(waited?.runAfter?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await wakeDue(resources)).toBeGreaterThanOrEqual(1);
    expect(await store.get(row.id)).toMatchObject({ status: 'PENDING', waitingFor: null });
  });

  it('a token past its timeout throws WaitTokenTimeoutError, on this run and the next', async () => {
    const row = await task();
    const ctx = run(row).context();
    const token = await ctx.createToken({ timeoutMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const error = await ctx.waitForToken(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WaitTokenTimeoutError);
    expect(error).toMatchObject({ token: token.id, timeoutAt: token.timeoutAt });
    const later = run(row).context();
    await later.createToken({ timeoutMs: 1000 });
    await expect(later.waitForToken(token)).rejects.toBeInstanceOf(WaitTokenTimeoutError);
  });

  it("another task's token, or no token at all, is an InvalidStepError; the order of token steps is checked", async () => {
    const theirs = await run(await task())
      .context()
      .createToken({ timeoutMs: 60_000 });
    const row = await task();
    await expect(run(row).context().waitForToken(theirs)).rejects.toBeInstanceOf(InvalidStepError);
    await expect(
      run(await task())
        .context()
        .waitForToken({ id: 'nope', url: '', timeoutAt: '' }),
    ).rejects.toBeInstanceOf(InvalidStepError);
    // A run that reaches a token where an earlier run recorded a step: non-determinism.
    const other = await task();
    await run(other)
      .context()
      .step('first', () => 1);
    await expect(run(other).context().createToken({ timeoutMs: 60_000 })).rejects.toBeInstanceOf(
      NonDeterminismError,
    );
  });
});
