/**
 * LLM budgets (issue 22), end to end: a server (in this process) and two worker processes (one slot
 * each) against the fake OpenAI server, whose answers are slow. A tenant's `llm_tokens_per_day` is
 * reached mid-run: no model call starts past it (the overshoot is at most the calls already
 * running, one per other worker), the tasks not run stay PENDING (held, not failed, no attempt
 * counted); a new LLM submission is refused 429 BUDGET_EXCEEDED with Retry-After to midnight UTC
 * (REST and tRPC), a task type that calls no model is not; the limits and the usage report say why;
 * the budget raised, the held tasks run.
 */
import {
  type AppProcess,
  type FakeOpenAI,
  spawnApp,
  startFakeOpenAI,
  testMode,
  waitFor,
} from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

/** Each call: a prompt of one word, a reply of two ("echo: wordN"): 3 tokens. */
const TOKENS_PER_CALL = 3;
const BUDGET = 3 * TOKENS_PER_CALL;
const TASKS = 8;
const WORKERS = 2;

let fake: FakeOpenAI;
let stack: Stack;
let sql: postgres.Sql;
const workers: AppProcess[] = [];

interface TaskBody {
  id: string;
  status: string;
  attempts: number;
  attemptErrors: unknown[];
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

const task = async (id: string) => (await api('GET', `/tasks/${id}`)).body as unknown as TaskBody;

/** Seconds from now to the next 00:00 UTC. */
const toMidnight = () => {
  const now = new Date();
  return (Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000;
};

beforeAll(async () => {
  // A slow provider: each answer takes about 600 ms, so that calls overlap across the two workers.
  fake = await startFakeOpenAI({ chunkDelayMs: 200 });
  stack = await startStack(
    {
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: fake.baseURL,
      OPENAI_MODEL: 'gpt-4o-mini',
      WORKER_CONCURRENCY: '1',
    },
    { worker: false },
  );
  for (let i = 0; i < WORKERS; i++) workers.push(await spawnApp('worker', stack.env.vars));
  sql = postgres(stack.env.databaseUrl, { max: 1, onnotice: () => {} });
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await sql?.end({ timeout: 5 });
  await stack?.close();
  await fake?.close();
});

describe(`LLM budgets across ${WORKERS} workers (${testMode} mode)`, () => {
  const ids: string[] = [];

  it('a daily token budget reached mid-run: no call starts past it, the rest is held PENDING', async () => {
    const set = await api('PUT', '/tenants/default/limits', { llm_tokens_per_day: BUDGET });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.budgets).toMatchObject({ llmTokensPerDay: BUDGET, tokensToday: 0, exceeded: null });
    for (let i = 0; i < TASKS; i++) {
      const res = await api('POST', '/tasks', { name: 'query_chatgpt', input: { prompt: `word${i}` } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      ids.push(res.body.id as string);
    }
    // Settled: nothing RUNNING, the spend at or past the budget.
    const settled = await waitFor(
      async () => {
        const tasks = await Promise.all(ids.map(task));
        const [spent] = await sql<{ tokens: number }[]>`
          select coalesce(sum(prompt_tokens + completion_tokens), 0)::int as tokens from task_llm_calls`;
        return tasks.every((t) => t.status !== 'RUNNING') && (spent?.tokens ?? 0) >= BUDGET
          ? tasks
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the budget to be reached and nothing running' },
    );
    // Quiet for a while: no further call starts.
    const calls = fake.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(fake.requests.length).toBe(calls);

    const completed = settled.filter((t) => t.status === 'COMPLETED');
    const pending = settled.filter((t) => t.status === 'PENDING');
    expect(completed.length + pending.length).toBe(TASKS); // none FAILED
    // Three calls reach the budget; at most one more (the other worker's, already running) passes it.
    expect(fake.requests.length).toBe(completed.length);
    expect(completed.length).toBeGreaterThanOrEqual(BUDGET / TOKENS_PER_CALL);
    expect(completed.length).toBeLessThanOrEqual(BUDGET / TOKENS_PER_CALL + WORKERS - 1);
    // Held tasks spent no attempt.
    for (const t of pending) expect(t).toMatchObject({ attempts: 0, attemptErrors: [] });

    // No call started after the budget was reached: each provider request arrived before the
    // commit of the call that reached it (its ledger row, in id order).
    const rows = await sql<{ tokens: number; at: Date }[]>`
      select prompt_tokens + completion_tokens as tokens, created_at as at from task_llm_calls order by id`;
    let sum = 0;
    const reached = rows.find((row) => {
      sum += row.tokens;
      return sum >= BUDGET;
    });
    expect(reached).toBeDefined();
    const reachedAt = reached?.at.getTime() ?? 0;
    // 250 ms: the recorded time is the transaction's start, its commit a little later.
    for (const request of fake.requests) expect(request.at).toBeLessThanOrEqual(reachedAt + 250);
  }, 60_000);

  it('refuses a new LLM task with 429 BUDGET_EXCEEDED and Retry-After to midnight UTC; not another type', async () => {
    const refused = await api('POST', '/tasks', { name: 'query_chatgpt', input: { prompt: 'one more' } });
    expect(refused.status, JSON.stringify(refused.body)).toBe(429);
    expect(refused.body).toMatchObject({ code: 'BUDGET_EXCEEDED', status: 429 });
    expect(refused.body.error).toMatch(/llm_tokens_per_day 9/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Math.abs(retryAfter - toMidnight())).toBeLessThanOrEqual(3);
    // The old route and the batch say the same; tRPC too, with the header.
    const legacy = await api('POST', '/run-task', {
      task_name: 'query_chatgpt',
      task_parameters: { prompt: 'x' },
    });
    expect(legacy.status).toBe(429);
    const batch = await api('POST', '/tasks/batch', {
      tasks: [
        { name: 'sum_two_numbers', input: { a: 1, b: 2 } },
        { name: 'query_chatgpt', input: { prompt: 'x' } },
      ],
    });
    expect(batch.status).toBe(429);
    expect(batch.body.code).toBe('BUDGET_EXCEEDED');
    const trpc = await fetch(`${stack.url}/trpc/createTask`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'query_chatgpt', input: { prompt: 'x' } }),
    });
    expect(trpc.status).toBe(429);
    expect(Number(trpc.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await trpc.json()) as { error: { data: { code: string } } }).error.data.code).toBe(
      'BUDGET_EXCEEDED',
    );
    // A type that calls no model runs as ever.
    const sum = await api('POST', '/tasks', { name: 'sum_two_numbers', input: { a: 2, b: 3 } });
    expect(sum.status).toBe(201);
    await waitFor(
      async () => ((await task(sum.body.id as string)).status === 'COMPLETED' ? true : undefined),
      {
        what: 'a sum to complete while the LLM tasks are held',
      },
    );
  });

  it('says why the tasks wait: the limits and the usage report show the budget reached and until when', async () => {
    const midnight = new Date(Date.now() + toMidnight() * 1000).toISOString().slice(0, 10);
    const limits = await api('GET', '/tenants/default/limits');
    expect(limits.body.budgets).toMatchObject({
      llmTokensPerDay: BUDGET,
      exceeded: 'llm_tokens_per_day',
      heldUntil: `${midnight}T00:00:00.000Z`,
    });
    const usage = await api('GET', '/usage?group_by=model');
    expect(usage.body.budgets).toMatchObject({ exceeded: 'llm_tokens_per_day' });
    expect((usage.body.budgets as { tokensToday: number }).tokensToday).toBeGreaterThanOrEqual(BUDGET);
  });

  it("holds a parent's LLM children over the budget, the parent waiting for them (no refusal, no re-run loop)", async () => {
    const parent = await api('POST', '/tasks', {
      name: 'summarize_documents',
      input: { documents: ['first text', 'second text'] },
    });
    expect(parent.status, JSON.stringify(parent.body)).toBe(201);
    const id = parent.body.id as string;
    const children = async () =>
      sql<{ status: string; attempts: number }[]>`select status, attempts from tasks where parent_id = ${id}`;
    await waitFor(
      async () =>
        (await task(id)).status === 'WAITING' && (await children()).length === 2 ? true : undefined,
      { timeoutMs: 20_000, what: 'the parent to wait for its two children' },
    );
    // A while later: the children still held (PENDING, no attempt), the parent still waiting after
    // its one attempt, and no model called.
    const calls = fake.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await children()).toEqual([
      { status: 'PENDING', attempts: 0 },
      { status: 'PENDING', attempts: 0 },
    ]);
    expect(await task(id)).toMatchObject({ status: 'WAITING', attempts: 1 });
    expect(fake.requests.length).toBe(calls);
    // Cancelled, it takes its held children with it (the next test counts the held tasks' calls).
    expect((await api('POST', `/tasks/${id}/cancel`)).status).toBe(200);
    await waitFor(
      async () => ((await children()).every((c) => c.status === 'CANCELLED') ? true : undefined),
      { what: "the parent's children cancelled" },
    );
  }, 60_000);

  it('runs the held tasks once the budget is raised, each in one attempt', async () => {
    const before = fake.requests.length;
    const raised = await api('PUT', '/tenants/default/limits', { llm_tokens_per_day: 1_000_000 });
    expect(raised.status).toBe(200);
    const done = await waitFor(
      async () => {
        const tasks = await Promise.all(ids.map(task));
        return tasks.every((t) => t.status === 'COMPLETED') ? tasks : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the held tasks to complete' },
    );
    for (const t of done) expect(t).toMatchObject({ attempts: 1, attemptErrors: [] });
    expect(fake.requests.length - before).toBe(TASKS - before);
    const limits = await api('GET', '/tenants/default/limits');
    expect(limits.body.budgets).toMatchObject({ exceeded: null, heldUntil: null });
  }, 60_000);
});
