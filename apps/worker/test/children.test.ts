import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TaskRow, taskSteps, tasks } from '@tasker/db';
import { createTokensApi } from '@tasker/engine';
import {
  type AppProcess,
  type FakeOpenAI,
  spawnApp,
  startFakeOpenAI,
  testMode,
  waitFor,
} from '@tasker/testing';
import { and, eq, sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

// Child tasks (issue 21), in the suite's queue mode (TEST_MODE): the real worker, run from source
// with parent task types of its own (fixtures/children-worker.ts) whose children are catalog types.

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'children-worker.ts');
const FAST = {
  WORKER_LOCK_MS: '2000',
  SWEEP_INTERVAL_MS: '500',
  SWEEP_GRACE_MS: '1000',
  WAKE_INTERVAL_MS: '200',
  OPENAI_API_KEY: 'sk-test',
};

let harness: Harness | undefined;
let openai: FakeOpenAI | undefined;
const workers: AppProcess[] = [];
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tasker-children-'));
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
  await harness?.close();
  harness = undefined;
  await openai?.close();
  openai = undefined;
  rmSync(dir, { recursive: true, force: true });
});

async function start(vars: Record<string, string> = {}, fake: Parameters<typeof startFakeOpenAI>[0] = {}) {
  openai = await startFakeOpenAI(fake);
  harness = await Harness.start({ ...FAST, OPENAI_BASE_URL: openai.baseURL, ...vars });
  return harness;
}

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
async function insert(h: Harness, name: string, input: Record<string, unknown>, parentId?: string) {
  const id = randomUUID();
  await h.db.db.insert(tasks).values({ id, name, input, maxAttempts: 2, parentId: parentId ?? null });
  return id;
}

async function until(h: Harness, id: string, status: string, timeoutMs = 60_000): Promise<TaskRow> {
  return waitFor(
    async () => {
      const row = await h.store.get(id);
      return row?.status === status ? row : undefined;
    },
    { timeoutMs, what: `task ${id} ${status}` },
  );
}

async function children(h: Harness, parentId: string): Promise<TaskRow[]> {
  return h.db.db.select().from(tasks).where(eq(tasks.parentId, parentId)).orderBy(tasks.createdAt);
}

const runs = (file: string) =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;

describe(`child tasks (${testMode})`, () => {
  it('a parent with 50 children on one worker of concurrency 2 finishes: the waiting parent holds no slot', async () => {
    const h = await start();
    await startWorker(h, { WORKER_CONCURRENCY: '2' });
    const file = path.join(dir, 'runs');
    const id = await insert(h, 'test_fan_out', { n: 50, file, prompts: [] });
    const done = await until(h, id, 'COMPLETED');
    expect(done.output).toEqual({ sums: Array.from({ length: 50 }, (_, i) => i + 1), replies: [] });
    const kids = await children(h, id);
    expect(kids).toHaveLength(50);
    expect(new Set(kids.map((k) => k.status))).toEqual(new Set(['COMPLETED']));
    // Same tenant, the parent's concurrency key.
    expect(new Set(kids.map((k) => `${k.tenantId}/${k.concurrencyKey}`))).toEqual(
      new Set([`${done.tenantId}/${done.concurrencyKey ?? done.tenantId}`]),
    );
    // The first run submitted and waited; the second read the outputs.
    expect(runs(file)).toBe(2);
    // The record: its children counted, listed; each child names its parent.
    const record = await h.api.get('default', id);
    expect(record.children).toMatchObject({ total: 50, byStatus: { COMPLETED: 50, RUNNING: 0 } });
    expect(record.childTasks).toHaveLength(50);
    expect((await h.api.get('default', kids[0]?.id ?? '')).parentId).toBe(id);
    expect(record.steps).toMatchObject([{ id: '$children:0', status: 'completed' }]);
    // The list: filtered by parent, and each row with its children counted.
    const page = await h.api.list('default', { parentId: id, limit: 100 });
    expect(page.tasks).toHaveLength(50);
    expect(page.tasks.every((t) => t.parentId === id && t.children?.total === 0)).toBe(true);
    const all = await h.api.list('default', { limit: 100 });
    expect(all.tasks.find((t) => t.id === id)?.children).toMatchObject({ total: 50 });
  });

  it("a child's failure: caught by the parent (ChildTaskError), or failing it (ChildTasksError)", async () => {
    const h = await start(
      {},
      { fail: (r) => (JSON.stringify(r.body).includes('FAIL') ? { status: 400 } : undefined) },
    );
    await startWorker(h);
    const caught = await insert(h, 'test_catch', { prompt: 'please FAIL' });
    const done = await until(h, caught, 'COMPLETED');
    const [child] = await children(h, caught);
    expect(child?.status).toBe('FAILED');
    expect(done.output).toMatchObject({ reply: null, failed: { childId: child?.id, status: 'FAILED' } });

    const file = path.join(dir, 'runs');
    const uncaught = await insert(h, 'test_fan_out', { n: 2, file, prompts: ['hello', 'FAIL now'] });
    const failed = await until(h, uncaught, 'FAILED');
    expect(failed.error).toMatchObject({ name: 'ChildTasksError' });
    expect(failed.error?.message).toContain('1 of 2 child tasks did not complete');
    // No second attempt: the same children would fail it again.
    expect(failed.attemptErrors).toHaveLength(1);
  });

  it('cancelling a parent cancels its unfinished children, running ones included', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const h = await start({}, { hold: () => held });
    await startWorker(h, { WORKER_CONCURRENCY: '3' });
    const file = path.join(dir, 'runs');
    // 1 sum, then 4 replies held by the fake model: 2 of them run, 2 wait for a slot.
    const id = await insert(h, 'test_fan_out', { n: 1, file, prompts: ['a', 'b', 'c', 'd'] });
    await waitFor(async () => (await children(h, id)).filter((k) => k.status === 'RUNNING').length >= 2, {
      timeoutMs: 30_000,
      what: 'two children RUNNING',
    });
    expect((await h.store.get(id))?.status).toBe('WAITING');
    const cancelled = await h.engine.lifecycle.cancel(id);
    expect(cancelled.status).toBe('CANCELLED');
    const right = await children(h, id);
    // In the parent's commit: the queued ones CANCELLED, the running ones asked to stop.
    for (const kid of right.filter((k) => k.name === 'query_chatgpt'))
      expect(kid.status === 'CANCELLED' || kid.cancelRequestedAt !== null).toBe(true);
    await waitFor(async () => (await children(h, id)).every((k) => k.finishedAt !== null), {
      timeoutMs: 30_000,
      what: 'every child ended',
    });
    release();
    const kids = await children(h, id);
    expect(kids.filter((k) => k.name === 'query_chatgpt').map((k) => k.status)).toEqual([
      'CANCELLED',
      'CANCELLED',
      'CANCELLED',
      'CANCELLED',
    ]);
    // Once they have all ended, the parent can be retried (while one runs it cannot: the next test).
    expect((await h.engine.lifecycle.retry(id)).status).toBe('PENDING');
  });

  it('a retry of a parent whose child is unfinished: 409 CHILDREN_RUNNING, nothing changed', async () => {
    const h = await start();
    const parent = randomUUID();
    await h.db.db.insert(tasks).values({
      id: parent,
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      status: 'FAILED',
      finishedAt: new Date(),
    });
    await insert(h, 'sum_two_numbers', { a: 1, b: 1 }, parent);
    await expect(h.api.retry('default', parent)).rejects.toMatchObject({
      failure: { status: 409, code: 'CHILDREN_RUNNING' },
    });
    expect((await h.store.get(parent))?.status).toBe('FAILED');
  });

  it('a child deeper than CHILD_TASK_MAX_DEPTH: the parent fails with ChildTaskLimitError, no child made', async () => {
    const h = await start();
    await startWorker(h, { CHILD_TASK_MAX_DEPTH: '1' });
    const top = randomUUID();
    await h.db.db.insert(tasks).values({ id: top, name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    const id = await insert(h, 'test_fan_out', { n: 1, file: path.join(dir, 'runs'), prompts: [] }, top);
    const failed = await until(h, id, 'FAILED');
    expect(failed.error).toMatchObject({ name: 'ChildTaskLimitError' });
    expect(failed.attempts).toBe(1);
    expect(await children(h, id)).toHaveLength(0);
  });

  it('summarize_documents: one query_chatgpt child per document, the summaries in their order', async () => {
    const h = await start({}, { reply: (prompt) => `summary of ${prompt.split('\n\n').at(-1)}` });
    await startWorker(h, { WORKER_CONCURRENCY: '2' });
    const documents = Array.from({ length: 12 }, (_, i) => `document number ${i}`);
    const { id } = await h.api.submit('default', { name: 'summarize_documents', input: { documents } });
    const done = await until(h, id, 'COMPLETED');
    expect(done.output).toEqual({ summaries: documents.map((d) => `summary of ${d}`) });
    const kids = await children(h, id);
    expect(kids.map((k) => `${k.name} ${k.status}`)).toEqual(documents.map(() => 'query_chatgpt COMPLETED'));
    expect(openai?.requests).toHaveLength(12);
    // Out of bounds: refused at submission, nothing stored.
    for (const bad of [[], Array.from({ length: 101 }, () => 'd'), ['']])
      await expect(
        h.api.submit('default', { name: 'summarize_documents', input: { documents: bad } }),
      ).rejects.toThrow(/Invalid task parameters/);
  });

  it('summarize_documents with require_approval: waits for a token, completes when approved, fails when not', async () => {
    const h = await start();
    await startWorker(h, { WORKER_CONCURRENCY: '2' });
    const tokens = createTokensApi(h.engine.lifecycle);
    const submit = async () =>
      (
        await h.api.submit('default', {
          name: 'summarize_documents',
          input: { documents: ['one', 'two'], require_approval: true },
        })
      ).id;
    const [yes, no] = [await submit(), await submit()];
    for (const [id, approved] of [
      [yes, true],
      [no, false],
    ] as const) {
      const waiting = await waitFor(
        async () => {
          const row = await h.store.get(id);
          return row?.status === 'WAITING' && row.waitingFor?.kind === 'token' ? row : undefined;
        },
        { timeoutMs: 30_000, what: `task ${id} waiting for its approval` },
      );
      await tokens.complete('default', waiting.waitingFor?.token ?? '', { approved });
    }
    expect((await until(h, yes, 'COMPLETED')).output).toEqual({
      summaries: ['echo: Summarize the following document in a few sentences.\n\none', expect.any(String)],
    });
    expect((await until(h, no, 'FAILED')).error).toMatchObject({
      name: 'NotApprovedError',
      message: 'the summaries were not approved',
    });
    // The children ran once each: 2 per task.
    expect(openai?.requests).toHaveLength(4);
  });

  it('a run that died between submitting its children and recording its wait submits none again', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const h = await start({}, { hold: () => held });
    const worker = await startWorker(h);
    const file = path.join(dir, 'runs');
    const id = await insert(h, 'test_fan_out', { n: 5, file, prompts: ['x', 'y'] });
    await until(h, id, 'WAITING');
    await waitFor(async () => (await children(h, id)).length === 7, { what: '7 children' });
    // The worker dies; the state a death between the submission and the wait's commit leaves: the
    // children committed, the parent RUNNING (then PENDING again), no record of its wait.
    await worker.stop('SIGKILL');
    workers.splice(0);
    await h.db.db
      .delete(taskSteps)
      .where(and(eq(taskSteps.taskId, id), sql`${taskSteps.stepId} like '$children:%'`));
    await h.db.db
      .update(tasks)
      .set({ status: 'PENDING', waitingFor: null, version: sql`${tasks.version} + 1` })
      .where(eq(tasks.id, id));
    await startWorker(h);
    release();
    const done = await until(h, id, 'COMPLETED');
    expect(done.output).toMatchObject({ sums: [1, 2, 3, 4, 5], replies: ['echo: x', 'echo: y'] });
    expect(await children(h, id)).toHaveLength(7);
  });
});
