import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TaskRow, tasks } from '@tasker/db';
import { createTokensApi, NotFoundError, PublicFailureError, type TokensApi } from '@tasker/engine';
import { type AppProcess, spawnApp, testMode, waitFor } from '@tasker/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

// Wait tokens (issue 21), in the suite's queue mode (TEST_MODE): the real worker, run from source
// with task types of its own (fixtures/tokens-worker.ts), and completions through the engine's
// TokensApi (what POST /tokens/{token}/complete and the callback URL call; their HTTP side is in
// apps/server/test/tokens.test.ts).

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'tokens-worker.ts');
const FAST = {
  WORKER_LOCK_MS: '2000',
  SWEEP_INTERVAL_MS: '500',
  SWEEP_GRACE_MS: '1000',
  WAKE_INTERVAL_MS: '200',
  PUBLIC_URL: 'https://tasker.example.com/api',
};

let harness: Harness | undefined;
let tokensApi: TokensApi;
const workers: AppProcess[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tasker-tokens-'));
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(vars: Record<string, string> = {}): Promise<Harness> {
  harness = await Harness.start({ ...FAST, ...vars });
  tokensApi = createTokensApi(harness.engine.lifecycle);
  return harness;
}

async function startWorker(h: Harness): Promise<AppProcess> {
  const worker = await spawnApp('worker', h.env.vars, {
    script: FIXTURE,
    nodeArgs: ['--import', 'tsx'],
    timeoutMs: 30_000,
  });
  workers.push(worker);
  return worker;
}

/** A task of one of the fixture's types, inserted as a submission would (the catalog does not know them). */
async function insert(
  h: Harness,
  name: string,
  input: Record<string, unknown>,
  maxAttempts = 1,
  tenantId = 'default',
) {
  const id = randomUUID();
  await h.db.db.insert(tasks).values({ id, name, input, maxAttempts, tenantId });
  return id;
}

/** Each line of the file, counted; and the token the handler published (`token <id> <url>`). */
function marks(file: string): { counts: Record<string, number>; token?: { id: string; url: string } } {
  const counts: Record<string, number> = {};
  let token: { id: string; url: string } | undefined;
  if (!existsSync(file)) return { counts };
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const [word, id, url] = line.split(' ');
    if (word === 'token' && id && url) token = { id, url };
    const key = word === 'token' ? 'token' : line;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return token ? { counts, token } : { counts };
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

/** The public failure a completion threw: its status and code. */
async function refusal(promise: Promise<unknown>): Promise<{ status: number; code?: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof NotFoundError) return { status: 404 };
  if (error instanceof PublicFailureError) return { status: error.failure.status, code: error.failure.code };
  throw new Error(`expected a refusal, got ${String(error)}`);
}

const secretOf = (url: string) => url.split('/').pop() ?? '';

describe(`wait tokens (${testMode})`, () => {
  it('a waiting task holds no slot; completed once it resumes with the output (a second completion is a 409)', async () => {
    const h = await start({ WORKER_CONCURRENCY: '1' });
    const file = path.join(dir, 'effects');
    await startWorker(h);
    const id = await insert(h, 'test_approval', { file, timeoutMs: 60_000 }, 3);
    const waiting = await until(h, id, 'WAITING');
    const { token } = marks(file);
    expect(token?.url).toMatch(/^https:\/\/tasker\.example\.com\/api\/token-callbacks\/[A-Za-z0-9_-]{43}$/);
    expect(waiting.waitingFor).toMatchObject({ kind: 'token', token: token?.id });
    const view = await h.api.get('default', id);
    expect(view.waitingFor).toEqual({
      kind: 'token',
      token: token?.id,
      until: waiting.runAfter?.toISOString(),
    });
    // The token's step shows its id and timeout, never its callback URL (the secret).
    expect(view.steps?.map((s) => [s.id, s.status])).toEqual([
      ['before', 'completed'],
      ['$token:1', 'completed'],
      ['publish', 'completed'],
      ['$token-wait:3', 'waiting'],
    ]);
    expect(JSON.stringify(view.steps)).not.toContain(secretOf(token?.url ?? 'x'));
    // The waiting task holds no slot: a sum runs on the worker of concurrency 1 meanwhile.
    const sum = await h.submit('sum_two_numbers', { a: 2, b: 3 }, 1);
    expect((await until(h, sum, 'COMPLETED', 10_000)).output).toBe(5);
    expect((await h.store.get(id))?.status).toBe('WAITING');

    const done = await tokensApi.complete('default', token?.id ?? '', { approved: true });
    expect(done).toMatchObject({ id: token?.id, taskId: id, status: 'completed' });
    const finished = await until(h, id, 'COMPLETED');
    expect(finished.output).toEqual({ answer: { approved: true }, timedOut: false });
    // Resumed through its record: no step before the wait ran twice.
    expect(marks(file).counts).toEqual({ before: 1, token: 1, after: 1 });
    expect(await refusal(tokensApi.complete('default', token?.id ?? '', { approved: false }))).toEqual({
      status: 409,
      code: 'TOKEN_ALREADY_COMPLETED',
    });
    // Another tenant's token, a token never made, and no UUID at all: unknown.
    expect(await refusal(tokensApi.complete('someone-else', token?.id ?? '', 1))).toEqual({ status: 404 });
    expect(await refusal(tokensApi.complete('default', randomUUID(), 1))).toEqual({ status: 404 });
    expect(await refusal(tokensApi.complete('default', 'nope', 1))).toEqual({ status: 404 });
  });

  it('the one-call form: the token is in waiting_for; its callback URL completes it once, a guessed one is unknown', async () => {
    const h = await start();
    await startWorker(h);
    const id = await insert(h, 'test_one_call_token', { timeoutMs: 60_000 });
    const waiting = await until(h, id, 'WAITING');
    const token = waiting.waitingFor?.token;
    expect(waiting.waitingFor?.kind).toBe('token');
    const step = (await h.store.steps.list(id)).find((s) => s.stepId === '$token:0');
    const made = (step?.output ?? {}) as { id?: string; url?: string };
    const url = made.url ?? '';
    expect(made.id).toBe(token);
    // A guessed secret (well formed, or not) is unknown, and completes nothing.
    expect(await refusal(tokensApi.completeByCallback('A'.repeat(43), 'x'))).toEqual({ status: 404 });
    expect(await refusal(tokensApi.completeByCallback('short', 'x'))).toEqual({ status: 404 });
    expect(await tokensApi.completeByCallback(secretOf(url), ['by', 'callback'])).toMatchObject({
      id: token,
      status: 'completed',
    });
    expect((await until(h, id, 'COMPLETED')).output).toEqual({ got: ['by', 'callback'] });
    // Used: unknown now, like a guessed one.
    expect(await refusal(tokensApi.completeByCallback(secretOf(url), 'again'))).toEqual({ status: 404 });
  });

  it('a token that times out: a handler that catches WaitTokenTimeoutError goes on; a later completion is a 409', async () => {
    const h = await start();
    const file = path.join(dir, 'effects');
    await startWorker(h);
    const id = await insert(h, 'test_approval', { file, timeoutMs: 1500, catchTimeout: true }, 3);
    await until(h, id, 'WAITING');
    const done = await until(h, id, 'COMPLETED');
    expect(done.output).toEqual({ answer: null, timedOut: true });
    expect(marks(file).counts).toEqual({ before: 1, token: 1, timeout: 1 });
    const token = marks(file).token;
    expect(await refusal(tokensApi.complete('default', token?.id ?? '', 1))).toEqual({
      status: 409,
      code: 'TOKEN_TIMED_OUT',
    });
    expect(await refusal(tokensApi.completeByCallback(secretOf(token?.url ?? ''), 1))).toEqual({
      status: 404,
    });
  });

  it('a token that times out, not caught: the task fails at once with a clear error, no further attempt', async () => {
    const h = await start();
    const file = path.join(dir, 'effects');
    await startWorker(h);
    const id = await insert(h, 'test_approval', { file, timeoutMs: 1000 }, 3);
    const failed = await until(h, id, 'FAILED');
    expect(failed.attempts).toBe(1);
    expect(failed.error).toMatchObject({ name: 'WaitTokenTimeoutError', code: 'HANDLER_ERROR' });
    expect(failed.error?.message).toMatch(/^wait token [0-9a-f-]{36} timed out at .* without a completion$/);
    expect(marks(file).counts).toEqual({ before: 1, token: 1 });
  });

  it('cancelling a waiting task ends its token: completing it then is a 409, its callback URL unknown', async () => {
    const h = await start();
    const file = path.join(dir, 'effects');
    await startWorker(h);
    const id = await insert(h, 'test_approval', { file, timeoutMs: 60_000 });
    await until(h, id, 'WAITING');
    expect(await h.api.cancel('default', id)).toMatchObject({ status: 'CANCELLED', waitingFor: null });
    const token = marks(file).token;
    expect(await refusal(tokensApi.complete('default', token?.id ?? '', 1))).toEqual({
      status: 409,
      code: 'TOKEN_TASK_FINISHED',
    });
    expect(await refusal(tokensApi.completeByCallback(secretOf(token?.url ?? ''), 1))).toEqual({
      status: 404,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await h.store.get(id))?.status).toBe('CANCELLED');
    expect(marks(file).counts).toEqual({ before: 1, token: 1 });
  });

  it('no worker while the task waits: the completion queues it (PENDING), and a new worker resumes it', async () => {
    const h = await start();
    const file = path.join(dir, 'effects');
    const first = await startWorker(h);
    const id = await insert(h, 'test_approval', { file, timeoutMs: 60_000 }, 3);
    await until(h, id, 'WAITING');
    await first.stop('SIGKILL');
    const token = marks(file).token;
    await tokensApi.complete('default', token?.id ?? '', 'approved while no worker ran');
    const queued = await h.store.get(id);
    expect(queued).toMatchObject({ status: 'PENDING', waitingFor: null });
    await startWorker(h);
    const done = await until(h, id, 'COMPLETED');
    expect(done.output).toEqual({ answer: 'approved while no worker ran', timedOut: false });
    expect(marks(file).counts).toEqual({ before: 1, token: 1, after: 1 });
  });
});
