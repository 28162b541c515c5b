/**
 * LLM tasks end to end (issue 22): a server and a worker (in this process, so that the catalog can
 * gain a test type) against two fake OpenAI servers, the first provider and the fallback. Usage on
 * the record (REST, tRPC), summed over attempts and per attempt, in the ledger and the metrics; a
 * 429's retry-after as the retry's delay (timed); the fallback; no retry on a 400; the prompt bound.
 */
import { createLogger, loadEnv, TaskerMetrics } from '@tasker/engine';
import { costOf, DEFAULT_LLM_PRICES } from '@tasker/tasks';
import { type FakeOpenAI, type RecordedRequest, startFakeOpenAI, waitFor } from '@tasker/testing';
import { startWorker, type TaskerWorker } from '@tasker/worker';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { postJson, type Stack, startStack } from './helpers.ts';

// A task type of two calls, whose first attempt fails after its first call: usage summed over attempts.
vi.mock(import('../../../packages/tasks/src/catalog.ts'), async (importOriginal) => {
  const original = await importOriginal();
  const { defineTask } = await import('../../../packages/tasks/src/define.ts');
  const { z } = await import('zod');
  const twoCalls = defineTask({
    name: 'llm_two_calls',
    description: 'Asks twice; its first attempt fails after its first call.',
    input: z.strictObject({ topic: z.string() }),
    output: z.string(),
    retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 100 } },
    llm: { promptField: 'topic', maxPromptChars: 100, maxTokens: 50 },
    run: async ({ topic }, { llm, attempt }) => {
      const first = await llm.chat({ prompt: `first about ${topic}` });
      if (attempt === 1) throw new Error('failed after its first call');
      const second = await llm.chat({ prompt: `second about ${topic}`, stream: false });
      return `${first.text} / ${second.text}`;
    },
  });
  const taskDefinitions = [
    ...original.taskDefinitions,
    twoCalls,
  ] as unknown as typeof original.taskDefinitions;
  return {
    ...original,
    taskDefinitions,
    taskNames: taskDefinitions.map((d) => d.name) as typeof original.taskNames,
    getTaskDefinition: (name: string) => taskDefinitions.find((d) => d.name === name) as never,
  };
});

interface Usage {
  model: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number | null;
  calls: number;
  attempts: {
    attempt: number;
    model: string;
    promptTokens: number;
    completionTokens: number;
    calls: number;
  }[];
}
interface TaskBody {
  id: string;
  status: string;
  attempts: number;
  output: unknown;
  error: { message: string } | null;
  attemptErrors: { message: string; name: string; attempt?: number }[];
  usage: Usage | null;
}

const prompt = (r: RecordedRequest) => r.body.messages?.at(-1)?.content ?? '';
const RETRY_AFTER_S = 3;

let primary: FakeOpenAI;
let fallback: FakeOpenAI;
let stack: Stack;
let worker: TaskerWorker;
const metrics = new TaskerMetrics();

beforeAll(async () => {
  const seen = new Map<string, number>();
  primary = await startFakeOpenAI({
    fail: (request) => {
      const text = prompt(request);
      const times = (seen.get(text) ?? 0) + 1;
      seen.set(text, times);
      if (text.includes('RATE') && times === 1)
        return {
          status: 429,
          headers: { 'retry-after': String(RETRY_AFTER_S) },
          message: 'Rate limit reached',
        };
      if (text.includes('BAD'))
        return { status: 400, message: 'Your request was rejected by the content policy' };
      if (text.includes('DOWN')) return { status: 500, message: 'The server had an error' };
      return undefined;
    },
  });
  fallback = await startFakeOpenAI({
    reply: () => 'the fallback answers',
    fail: (request) =>
      prompt(request).includes('RATE') ? { status: 429, headers: { 'retry-after': '1' } } : undefined,
  });
  stack = await startStack(
    {
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: primary.baseURL,
      OPENAI_MODEL: 'gpt-4o-mini',
      OPENAI_FALLBACK_BASE_URL: fallback.baseURL,
      OPENAI_FALLBACK_MODEL: 'gpt-4o',
    },
    { worker: false },
  );
  const env = loadEnv(stack.env.vars);
  worker = await startWorker(env, createLogger(env, 'test-worker'), { metrics });
});

afterAll(async () => {
  await worker?.close();
  await stack?.close();
  await primary?.close();
  await fallback?.close();
});

async function submit(name: string, input: unknown): Promise<string> {
  const res = await postJson(`${stack.url}/tasks`, { name, input });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

async function finished(id: string, timeoutMs = 20_000): Promise<TaskBody> {
  return waitFor(
    async () => {
      const task = (await (await fetch(`${stack.url}/tasks/${id}`)).json()) as TaskBody;
      return ['COMPLETED', 'FAILED'].includes(task.status) ? task : undefined;
    },
    { timeoutMs, intervalMs: 50, what: `task ${id} to finish` },
  );
}

describe('usage on every LLM task', () => {
  it('records a completed call: tokens, cost from the price table, per attempt; REST and tRPC agree', async () => {
    const id = await submit('query_chatgpt', { prompt: 'tell me a joke' });
    const task = await finished(id);
    expect(task.status).toBe('COMPLETED');
    expect(task.output).toBe('echo: tell me a joke');
    // The fake counts words: 4 in the prompt, 5 in the reply.
    const totals = {
      model: 'gpt-4o-mini',
      promptTokens: 4,
      completionTokens: 5,
      costUsd: costOf(DEFAULT_LLM_PRICES, 'gpt-4o-mini', 4, 5),
      calls: 1,
    };
    expect(task.usage).toEqual({ ...totals, attempts: [{ attempt: 1, ...totals }] });
    const sent = primary.requests.find((r) => prompt(r) === 'tell me a joke');
    expect(sent?.body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 4096,
    });

    const trpc = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${stack.url}/trpc` })] });
    expect((await trpc.getTask.query({ id })).usage).toEqual(task.usage);

    const { body } = await metrics.scrape();
    expect(body).toMatch(
      /tasker_llm_tokens_total\{task_type="query_chatgpt",model="gpt-4o-mini",kind="prompt"\} [1-9]/,
    );
    expect(body).toMatch(
      /tasker_llm_cost_usd_total\{task_type="query_chatgpt",model="gpt-4o-mini"\} [0-9.e-]+/,
    );
  });

  it('sums the calls of every attempt, each under its attempt, and keeps each call in the ledger', async () => {
    const id = await submit('llm_two_calls', { topic: 'owls' });
    const task = await finished(id);
    expect(task.status).toBe('COMPLETED');
    expect(task.attempts).toBe(2);
    expect(task.attemptErrors).toMatchObject([{ attempt: 1, message: 'failed after its first call' }]);
    // "first about owls" (3 words) → "echo: first about owls" (4), twice; "second about owls" → 4.
    expect(task.usage).toMatchObject({
      model: 'gpt-4o-mini',
      promptTokens: 9,
      completionTokens: 12,
      calls: 3,
      attempts: [
        { attempt: 1, promptTokens: 3, completionTokens: 4, calls: 1 },
        { attempt: 2, promptTokens: 6, completionTokens: 8, calls: 2 },
      ],
    });
    expect(task.usage?.costUsd).toBeCloseTo((9 * 0.15 + 12 * 0.6) / 1e6, 12);
    const sql = postgres(stack.env.databaseUrl, { max: 1, onnotice: () => {} });
    const rows = await sql<{ attempt: number; model: string; prompt_tokens: number }[]>`
      select attempt, model, prompt_tokens from task_llm_calls where task_id = ${id} order by id`.finally(
      () => sql.end(),
    );
    expect(rows.map((r) => ({ ...r }))).toEqual([
      { attempt: 1, model: 'gpt-4o-mini', prompt_tokens: 3 },
      { attempt: 2, model: 'gpt-4o-mini', prompt_tokens: 3 },
      { attempt: 2, model: 'gpt-4o-mini', prompt_tokens: 3 },
    ]);
  });
});

describe('provider errors', () => {
  it("retries a 429 after its retry-after (both providers refused), then completes; the attempt's error names each provider", async () => {
    const id = await submit('query_chatgpt', { prompt: 'RATE me' });
    const task = await finished(id);
    expect(task.status).toBe('COMPLETED');
    expect(task.attempts).toBe(2);
    const calls = primary.requests.filter((r) => prompt(r) === 'RATE me');
    expect(calls.map((r) => r.status)).toEqual([429, 200]);
    const [first, second] = calls as [RecordedRequest, RecordedRequest];
    const waited = second.at - first.at;
    // query_chatgpt's own backoff would be 1-2 s: the 3 s here are the provider's.
    expect(waited).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000 - 50);
    expect(waited).toBeLessThan(RETRY_AFTER_S * 1000 + 2000);
    expect(task.attemptErrors).toHaveLength(1);
    expect(task.attemptErrors[0]?.name).toBe('LlmProviderError');
    expect(task.attemptErrors[0]?.message).toMatch(
      new RegExp(
        `^gpt-4o-mini at ${primary.baseURL} answered 429 \\(retry-after 3000 ms\\): .*Rate limit reached; fallback gpt-4o at ${fallback.baseURL} answered 429`,
      ),
    );
    expect(task.usage?.attempts).toMatchObject([{ attempt: 2, model: 'gpt-4o-mini', calls: 1 }]);
  });

  it('uses the fallback when the first provider fails with a 500', async () => {
    const id = await submit('query_chatgpt', { prompt: 'DOWN again' });
    const task = await finished(id);
    expect(task.status).toBe('COMPLETED');
    expect(task.attempts).toBe(1);
    expect(task.output).toBe('the fallback answers');
    expect(task.usage).toMatchObject({ model: 'gpt-4o', promptTokens: 2, completionTokens: 3, calls: 1 });
    expect(fallback.requests.filter((r) => prompt(r) === 'DOWN again').map((r) => r.body.model)).toEqual([
      'gpt-4o',
    ]);
  });

  it('fails a 400 for good: one attempt, no fallback, the error names the provider', async () => {
    const id = await submit('query_chatgpt', { prompt: 'BAD words' });
    const task = await finished(id);
    expect(task.status).toBe('FAILED');
    expect(task.attempts).toBe(1);
    expect(task.error?.message).toMatch(
      new RegExp(`^gpt-4o-mini at ${primary.baseURL} answered 400: .*content policy`),
    );
    expect(primary.requests.filter((r) => prompt(r) === 'BAD words')).toHaveLength(1);
    expect(fallback.requests.filter((r) => prompt(r) === 'BAD words')).toHaveLength(0);
    expect(task.usage).toBeNull();
  });
});

describe('the prompt bound', () => {
  it('refuses a longer prompt on every door with a 400 naming the field, and stores nothing', async () => {
    const before = primary.requests.length;
    const long = 'x'.repeat(32_001);
    const create = await postJson(`${stack.url}/tasks`, { name: 'query_chatgpt', input: { prompt: long } });
    expect(create.status).toBe(400);
    expect(create.body.issues).toEqual([
      expect.objectContaining({
        path: 'input.prompt',
        message: 'at most 32000 characters (the prompt limit of query_chatgpt)',
      }),
    ]);
    const legacy = await postJson(`${stack.url}/run-task`, {
      task_name: 'query_chatgpt',
      task_parameters: { prompt: long },
    });
    expect(legacy.status).toBe(400);
    expect(legacy.body.issues).toEqual([expect.objectContaining({ path: 'task_parameters.prompt' })]);
    const batch = await postJson(`${stack.url}/tasks/batch`, {
      tasks: [{ name: 'llm_two_calls', input: { topic: 'y'.repeat(101) } }],
    });
    expect(batch.status).toBe(400);
    expect(batch.body.issues).toEqual([expect.objectContaining({ path: 'tasks.0.input.topic' })]);
    const listed = (await (await fetch(`${stack.url}/tasks?name=query_chatgpt&limit=100`)).json()) as {
      tasks: { inputPreview: { bytes: number } }[];
    };
    expect(listed.tasks.every((t) => t.inputPreview.bytes < 32_000)).toBe(true);
    expect(primary.requests.length).toBe(before);
  });

  it('shows the bound and the usage in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as {
      components: { schemas: Record<string, { properties?: Record<string, Record<string, unknown>> }> };
    };
    const { schemas } = doc.components;
    expect(schemas.QueryChatgptInput?.properties?.prompt).toMatchObject({ maxLength: 32_000 });
    expect(schemas.TaskUsage?.properties).toHaveProperty('promptTokens');
    expect(schemas.Task?.properties).toHaveProperty('usage');
  });
});
