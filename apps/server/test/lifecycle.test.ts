import { createDb, type DbClient, TaskStore, tasks } from '@tasker/db';
import { type AppProcess, type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, type Stack, startStack } from './helpers.ts';

let stack: Stack;
let fake: FakeOpenAI;
const workers: AppProcess[] = [];

interface Task {
  id: string;
  status: string;
  attempts: number;
  priority: number;
  createdAt: string;
  startedAt: string | null;
  attemptErrors: { code: string }[];
  cancelRequestedAt: string | null;
}

beforeAll(async () => {
  // A model that streams slowly: one word every 400 ms.
  fake = await startFakeOpenAI({ reply: () => 'a b c d e f g h i j k l m n o p', chunkDelayMs: 400 });
  stack = await startStack({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL }, { worker: false });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop('SIGKILL')));
  await stack?.close();
  await fake?.close();
});

const submit = async (body: Record<string, unknown>) => {
  const res = await postJson(`${stack.url}/run-task`, body);
  if (res.status !== 200) throw new Error(`run-task ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body as { task_uuid: string; replayed?: boolean };
};
const getTask = async (id: string) => (await (await fetch(`${stack.url}/tasks/${id}`)).json()) as Task;
const cancel = (id: string) => fetch(`${stack.url}/tasks/${id}/cancel`, { method: 'POST' });
const sum = (a: number, extra: Record<string, unknown> = {}) =>
  submit({ task_name: 'sum_two_numbers', task_parameters: { a, b: 0 }, ...extra });

describe('run options', () => {
  it('priority: high-priority tasks submitted last run first', async () => {
    const low: string[] = [];
    for (let i = 0; i < 20; i++) low.push((await sum(i)).task_uuid);
    const high: string[] = [];
    for (let i = 0; i < 5; i++) high.push((await sum(100 + i, { priority: 10 })).task_uuid);
    workers.push(await spawnApp('worker', { ...stack.env.vars, WORKER_CONCURRENCY: '1' }));
    const tasks = await waitFor(async () => {
      const all = await Promise.all([...low, ...high].map(getTask));
      return all.every((t) => t.status === 'COMPLETED') ? all : undefined;
    });
    const firstFive = [...tasks]
      .sort((x, y) => Date.parse(x.startedAt ?? '') - Date.parse(y.startedAt ?? ''))
      .slice(0, 5);
    expect(firstFive.map((t) => t.id).sort()).toEqual([...high].sort());
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  it('delay_ms: a task delayed 2 s starts no sooner than 2 s after submission', async () => {
    workers.push(await spawnApp('worker', stack.env.vars));
    const { task_uuid } = await sum(1, { delay_ms: 2000 });
    const queued = await getTask(task_uuid);
    expect(queued.status).toBe('PENDING');
    const done = await waitFor(async () => {
      const t = await getTask(task_uuid);
      return t.status === 'COMPLETED' ? t : undefined;
    });
    expect(Date.parse(done.startedAt ?? '') - Date.parse(done.createdAt)).toBeGreaterThanOrEqual(2000);
  });

  it('timeout_ms: an attempt over its timeout is aborted and retried, then FAILED with every attempt error', async () => {
    const { task_uuid } = await submit({
      task_name: 'query_chatgpt',
      task_parameters: { prompt: 'slow' },
      timeout_ms: 300,
      max_attempts: 2,
    });
    const failed = await waitFor(
      async () => {
        const t = await getTask(task_uuid);
        return t.status === 'FAILED' ? t : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(failed.attempts).toBe(2);
    expect(failed.attemptErrors.map((e) => e.code)).toEqual(['TIMEOUT', 'TIMEOUT']);
  });

  it('idempotency_key: 50 concurrent submissions create exactly one task', async () => {
    const key = `order-${crypto.randomUUID()}`;
    const answers = await Promise.all(Array.from({ length: 50 }, () => sum(7, { idempotency_key: key })));
    expect(new Set(answers.map((a) => a.task_uuid)).size).toBe(1);
    expect(answers.filter((a) => a.replayed === false)).toHaveLength(1);
    expect(answers.filter((a) => a.replayed === true)).toHaveLength(49);
    // Run to its end, so that it is not left queued for the next tests (the pause test counts the queue).
    const [first] = answers;
    await waitFor(async () => first && (await getTask(first.task_uuid)).status === 'COMPLETED', {
      what: 'the idempotent task completed',
    });
  });

  it('rejects a run option out of range, naming it', async () => {
    const res = await postJson(`${stack.url}/run-task`, {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 2 },
      priority: 1000,
      delay_ms: 5,
      run_at: new Date().toISOString(),
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/priority/);
    expect(res.body.error).toMatch(/run_at: give delay_ms or run_at, not both/);
    const far = await postJson(`${stack.url}/run-task`, {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 2 },
      run_at: '9999-12-31T00:00:00Z',
    });
    expect(far.status).toBe(400);
    expect(far.body.error).toMatch(/run_at: must be within 30 days/);
  });
});

describe('pause', () => {
  it('with processing paused, 100 low-priority then 10 high-priority tasks: on resume the 10 run first', async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    workers.push(await spawnApp('worker', { ...stack.env.vars, WORKER_CONCURRENCY: '1' }));
    // Nothing left queued by the tests before (CI once counted one more than these 110).
    await waitFor(
      async () => ((await (await fetch(`${stack.url}/queue`)).json()) as { waiting: number }).waiting === 0,
      { what: 'an empty queue before the pause' },
    );
    const paused = await fetch(`${stack.url}/queue/pause`, { method: 'POST' });
    expect(await paused.json()).toMatchObject({ paused: true });
    const low: string[] = [];
    for (let i = 0; i < 100; i++) low.push((await sum(1000 + i)).task_uuid);
    const high: string[] = [];
    for (let i = 0; i < 10; i++) high.push((await sum(2000 + i, { priority: 50 })).task_uuid);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const state = (await (await fetch(`${stack.url}/queue`)).json()) as { paused: boolean; waiting: number };
    expect(state).toMatchObject({ paused: true, waiting: 110 });
    expect((await Promise.all([...low, ...high].map(getTask))).every((t) => t.status === 'PENDING')).toBe(
      true,
    );

    expect(await (await fetch(`${stack.url}/queue/resume`, { method: 'POST' })).json()).toMatchObject({
      paused: false,
    });
    const tasks = await waitFor(async () => {
      const all = await Promise.all([...low, ...high].map(getTask));
      return all.every((t) => t.status === 'COMPLETED') ? all : undefined;
    });
    const firstTen = [...tasks]
      .sort((x, y) => Date.parse(x.startedAt ?? '') - Date.parse(y.startedAt ?? ''))
      .slice(0, 10);
    expect(firstTen.map((t) => t.id).sort()).toEqual([...high].sort());
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
});

describe('pause one task type', () => {
  const post = (path: string, body: unknown) =>
    fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('holds queued and new tasks of that type (others run); resuming runs them all', async () => {
    const queuedBefore: string[] = [];
    for (let i = 0; i < 10; i++) queuedBefore.push((await sum(3000 + i)).task_uuid); // no worker yet: queued
    const paused = await post('/queue/pause', { task_name: 'sum_two_numbers' });
    expect(await paused.json()).toMatchObject({ paused: false, pausedTypes: ['sum_two_numbers'] });
    workers.push(await spawnApp('worker', stack.env.vars));
    const submittedAfter = (await sum(4000)).task_uuid;
    const other = await submit({
      task_name: 'find_longest_consecutive_letters',
      task_parameters: { string: 'xx' },
    });
    await waitFor(async () => (await getTask(other.task_uuid)).status === 'COMPLETED');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const held = await Promise.all([...queuedBefore, submittedAfter].map(getTask));
    expect(held.map((t) => `${t.status}/${t.attempts}`)).toEqual(held.map(() => 'PENDING/0'));

    const resumed = await post('/queue/resume', { task_name: 'sum_two_numbers' });
    expect(await resumed.json()).toMatchObject({ pausedTypes: [] });
    await waitFor(async () => {
      const all = await Promise.all([...queuedBefore, submittedAfter].map(getTask));
      return all.every((t) => t.status === 'COMPLETED');
    });
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  it('resuming without task_name resumes the queue and every type paused on its own', async () => {
    await post('/queue/pause', { task_name: 'sum_two_numbers' });
    await post('/queue/pause', { task_name: 'find_longest_consecutive_letters' });
    expect(await (await post('/queue/pause', {})).json()).toMatchObject({
      paused: true,
      pausedTypes: ['find_longest_consecutive_letters', 'sum_two_numbers'],
    });
    const held = (await sum(5000)).task_uuid;
    const resumed = await post('/queue/resume', {});
    expect(await resumed.json()).toMatchObject({ paused: false, pausedTypes: [] });
    workers.push(await spawnApp('worker', stack.env.vars));
    await waitFor(async () => (await getTask(held)).status === 'COMPLETED');
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });
});

describe('ttl_ms', () => {
  const post = (path: string, body: unknown) =>
    fetch(`${stack.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('a task not started within its ttl ends EXPIRED within ttl + 2 s, while its type and the whole queue are paused; retry runs it', async () => {
    await post('/queue/pause', { task_name: 'sum_two_numbers' });
    await post('/queue/pause', {});
    workers.push(await spawnApp('worker', stack.env.vars));
    const submitted = Date.now();
    const short = (await sum(7000, { ttl_ms: 500 })).task_uuid;
    const delayed = (await sum(7001, { ttl_ms: 500, delay_ms: 1000 })).task_uuid;
    const long = (await sum(7002, { ttl_ms: 60_000 })).task_uuid;
    const record = await getTask(short);
    expect(record).toMatchObject({ status: 'PENDING', ttlMs: 500 });
    const expired = await waitFor(async () => {
      const t = (await getTask(short)) as Task & {
        error: { code: string } | null;
        finishedAt: string | null;
      };
      return t.status === 'EXPIRED' ? t : undefined;
    });
    expect(Date.parse(expired.finishedAt ?? '') - submitted).toBeLessThan(500 + 2000);
    expect(expired.error?.code).toBe('EXPIRED');
    // A delayed task's ttl counts from its run_after: it is still waiting when the first expired.
    expect((await getTask(delayed)).status).toBe('PENDING');
    await waitFor(async () => (await getTask(delayed)).status === 'EXPIRED');
    expect((await getTask(long)).status).toBe('PENDING');
    // The old route reads an expired task as FAILED, with the reason.
    const legacy = await (await fetch(`${stack.url}/get-task-output?task_uuid=${short}`)).json();
    expect(legacy).toMatchObject({ task_output: { status: 'FAILED', error: expect.stringMatching(/ttl/) } });

    await post('/queue/resume', {});
    await waitFor(async () => (await getTask(long)).status === 'COMPLETED');
    const retried = await post(`/tasks/${short}/retry`, {});
    expect(retried.status).toBe(200);
    await waitFor(async () => (await getTask(short)).status === 'COMPLETED');
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  it('a job delivered after its task expired does not run it: the claim ends it EXPIRED', async () => {
    // No expiry pass in this worker for a minute: only the claim can see the expiry.
    const short = (await sum(7100, { ttl_ms: 200 })).task_uuid;
    await new Promise((resolve) => setTimeout(resolve, 400));
    workers.push(await spawnApp('worker', { ...stack.env.vars, EXPIRE_INTERVAL_MS: '60000' }));
    const t = await waitFor(async () => {
      const row = await getTask(short);
      return row.status === 'EXPIRED' ? row : undefined;
    });
    expect(t.attempts).toBe(0);
    expect(t.startedAt).toBeNull();
    await Promise.all(workers.splice(0).map((w) => w.stop()));
  });

  it('refuses a ttl below 100 ms, naming the field', async () => {
    const res = await postJson(`${stack.url}/run-task`, {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 2 },
      ttl_ms: 50,
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('ttl_ms');
  });
});

describe('cancellation', () => {
  it('a delayed (PENDING) task cancelled never runs', async () => {
    const { task_uuid } = await sum(2, { delay_ms: 1000 });
    const res = await cancel(task_uuid);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'CANCELLED', error: { code: 'CANCELLED' } });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await getTask(task_uuid)).toMatchObject({ status: 'CANCELLED', attempts: 0, startedAt: null });
    const legacy = await (await fetch(`${stack.url}/get-task-output?task_uuid=${task_uuid}`)).json();
    expect(legacy).toEqual({
      task_output: { status: 'FAILED', result: null, error: 'the task was cancelled' },
    });
  });

  it('with two workers, a RUNNING query_chatgpt ends CANCELLED within 1 s and its OpenAI request is aborted', async () => {
    while (workers.length < 2) workers.push(await spawnApp('worker', stack.env.vars));
    const { task_uuid } = await submit({
      task_name: 'query_chatgpt',
      task_parameters: { prompt: 'cancel me' },
    });
    await waitFor(async () => (await getTask(task_uuid)).status === 'RUNNING');
    await waitFor(() => fake.requests.some((r) => r.body.messages?.[0]?.content === 'cancel me'));
    const asked = performance.now();
    const res = await cancel(task_uuid);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Task).cancelRequestedAt).not.toBeNull();
    const cancelled = await waitFor(async () => {
      const t = await getTask(task_uuid);
      return t.status === 'CANCELLED' ? t : undefined;
    });
    expect(performance.now() - asked).toBeLessThan(1000);
    expect(cancelled.attempts).toBe(1);
    const request = fake.requests.find((r) => r.body.messages?.[0]?.content === 'cancel me');
    await waitFor(() => request?.aborted === true, { what: 'the OpenAI request to be aborted' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await getTask(task_uuid)).status).toBe('CANCELLED'); // not retried
  });

  it('cancelling a finished task is a 409 that says so; an unknown one a 404', async () => {
    const { task_uuid } = await sum(3);
    await waitFor(async () => (await getTask(task_uuid)).status === 'COMPLETED');
    const res = await cancel(task_uuid);
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({
      code: 'CONFLICT',
      error: expect.stringMatching(/already COMPLETED/),
    });
    expect((await cancel(crypto.randomUUID())).status).toBe(404);
  });
});

describe('retry by hand', () => {
  it('a CANCELLED task runs again under its id; a COMPLETED one is a 409', async () => {
    const { task_uuid } = await sum(40, { delay_ms: 60_000 });
    expect((await cancel(task_uuid)).status).toBe(200);
    const res = await fetch(`${stack.url}/tasks/${task_uuid}/retry`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: task_uuid, status: 'PENDING', attempts: 0, error: null });
    const done = await waitFor(async () => {
      const t = await getTask(task_uuid);
      return t.status === 'COMPLETED' ? t : undefined;
    });
    expect(done.attempts).toBe(1);
    const again = await fetch(`${stack.url}/tasks/${task_uuid}/retry`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({
      error: expect.stringMatching(/COMPLETED; only a FAILED, CANCELLED/),
    });
  });
});

describe('retry of a parent task (child tasks)', () => {
  const retry = (id: string) => fetch(`${stack.url}/tasks/${id}/retry`, { method: 'POST' });
  let db: DbClient;
  beforeAll(() => {
    db = createDb(stack.env.databaseUrl, { max: 1 });
  });
  afterAll(() => db?.close());

  /** A task row of its own (a child's parent_id cannot be given through the API). */
  const row = async (values: Partial<typeof tasks.$inferInsert>) => {
    const id = crypto.randomUUID();
    await db.db.insert(tasks).values({ id, name: 'sum_two_numbers', input: { a: 1, b: 1 }, ...values });
    return id;
  };
  // A child due in 10 minutes: no worker runs it meanwhile.
  const later = () => new Date(Date.now() + 600_000);

  it('a parent that fails for good cancels its queued child, and can be retried at once', async () => {
    const parent = await row({ status: 'RUNNING', startedAt: new Date(), attempts: 1 });
    const child = await row({ parentId: parent, runAfter: later() });
    const store = new TaskStore(db);
    await store.failLost(parent, { message: 'stalled', name: 'Error', code: 'STALLED' });
    expect(await getTask(child)).toMatchObject({
      status: 'CANCELLED',
      error: { message: 'the task was cancelled: its parent task failed' },
    });
    const res = await retry(parent);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: parent, status: 'PENDING' });
  });

  it('a FAILED parent whose child has not ended: 409 CHILDREN_RUNNING says how to cancel the child; cancelled, the retry goes', async () => {
    // Ended before its end cancelled children (an earlier version): its child is still queued.
    const parent = await row({ status: 'FAILED', finishedAt: new Date() });
    const child = await row({ parentId: parent, runAfter: later() });
    const refused = await retry(parent);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      code: 'CHILDREN_RUNNING',
      error: expect.stringContaining(`POST /tasks/{child}/cancel; GET /tasks/${parent} lists them`),
    });
    expect((await cancel(child)).status).toBe(200);
    const res = await retry(parent);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: parent, status: 'PENDING' });
  });

  it('a FAILED task whose singleton_key another unfinished task holds: 409 SINGLETON_KEY_HELD names it; once it ended, the retry goes', async () => {
    const key = `single-${crypto.randomUUID()}`;
    const failed = await row({ singletonKey: key, status: 'FAILED', finishedAt: new Date() });
    const holder = await row({ singletonKey: key, runAfter: later() });
    const refused = await retry(failed);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({
      code: 'SINGLETON_KEY_HELD',
      status: 409,
      error: expect.stringContaining(`held by unfinished task ${holder}`),
    });
    expect(await getTask(failed)).toMatchObject({ status: 'FAILED' });
    expect((await cancel(holder)).status).toBe(200);
    const res = await retry(failed);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: failed, status: 'PENDING' });
  });
});

describe('listing', () => {
  it('pages newest first with a cursor, without gaps or repeats, and filters by status and name', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let previous = Number.POSITIVE_INFINITY;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : '';
      const page = (await (await fetch(`${stack.url}/tasks?limit=7${query}`)).json()) as {
        tasks: Task[];
        next_cursor: string | null;
      };
      for (const t of page.tasks) {
        expect(Date.parse(t.createdAt)).toBeLessThanOrEqual(previous);
        previous = Date.parse(t.createdAt);
        seen.push(t.id);
      }
      cursor = page.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBeGreaterThanOrEqual(30);

    const cancelled = (await (await fetch(`${stack.url}/tasks?status=CANCELLED&limit=500`)).json()) as {
      tasks: Task[];
    };
    expect(cancelled.tasks.length).toBeGreaterThanOrEqual(2);
    expect(cancelled.tasks.every((t) => t.status === 'CANCELLED')).toBe(true);
    const both = (await (
      await fetch(`${stack.url}/tasks?status=CANCELLED,FAILED&name=query_chatgpt`)
    ).json()) as {
      tasks: (Task & { name: string })[];
    };
    expect(
      both.tasks.every((t) => t.name === 'query_chatgpt' && ['CANCELLED', 'FAILED'].includes(t.status)),
    ).toBe(true);
    expect(both.tasks.length).toBeGreaterThanOrEqual(2);

    expect((await fetch(`${stack.url}/tasks?cursor=bogus`)).status).toBe(400);
    expect((await fetch(`${stack.url}/tasks?status=DONE`)).status).toBe(400);
    expect((await fetch(`${stack.url}/tasks?limit=0`)).status).toBe(400);
  });
});
