/**
 * The identical-prompt cache (issue 22), end to end: a server and a worker in this process (so that
 * the catalog gains two test types that opt in) against the fake OpenAI server, counting its calls.
 * The same tenant, model, messages and parameters within the TTL: the stored reply, marked cached,
 * no provider call, no cost; another tenant's identical prompt is a miss; a type that did not opt
 * in, other parameters, or a TTL passed: a provider call. The sweep deletes expired entries.
 */
import { ApiKeyStore, createDb, type DbClient, LlmCacheStore } from '@tasker/db';
import { createLogger, loadEnv, TaskerMetrics } from '@tasker/engine';
import { type FakeOpenAI, startFakeOpenAI, testMode, waitFor } from '@tasker/testing';
import { startWorker, type TaskerWorker } from '@tasker/worker';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

vi.mock(import('../../../packages/tasks/src/catalog.ts'), async (importOriginal) => {
  const original = await importOriginal();
  const { defineTask } = await import('../../../packages/tasks/src/define.ts');
  const { z } = await import('zod');
  const cachedAnswer = (name: string, cacheTtlMs: number) =>
    defineTask({
      name,
      description: 'Answers a question; identical questions within the TTL come from the cache.',
      input: z.strictObject({ question: z.string(), temperature: z.number().optional() }),
      output: z.object({ text: z.string(), cached: z.boolean() }),
      retry: { attempts: 1 },
      llm: { promptField: 'question', maxTokens: 50, cacheTtlMs },
      run: async ({ question, temperature }, { llm }) => {
        const reply = await llm.chat({
          prompt: question,
          ...(temperature === undefined ? {} : { temperature }),
        });
        return { text: reply.text, cached: reply.cached };
      },
    });
  const taskDefinitions = [
    ...original.taskDefinitions,
    cachedAnswer('cached_answer', 60_000),
    cachedAnswer('briefly_cached_answer', 400),
  ] as unknown as typeof original.taskDefinitions;
  return {
    ...original,
    taskDefinitions,
    taskNames: taskDefinitions.map((d) => d.name) as typeof original.taskNames,
    getTaskDefinition: (name: string) => taskDefinitions.find((d) => d.name === name) as never,
  };
});

interface TaskBody {
  id: string;
  status: string;
  output: { text: string; cached: boolean } | string | null;
  usage: {
    promptTokens: number;
    completionTokens: number;
    costUsd: number | null;
    calls: number;
    cached?: boolean;
    cachedCalls?: number;
    attempts: { cached?: boolean }[];
  } | null;
}

let fake: FakeOpenAI;
let stack: Stack;
let worker: TaskerWorker;
let db: DbClient;
const keys = { acme: '', globex: '' };

beforeAll(async () => {
  fake = await startFakeOpenAI();
  stack = await startStack(
    {
      AUTH_MODE: 'required',
      RATE_LIMIT_PER_MINUTE: '0',
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: fake.baseURL,
      OPENAI_MODEL: 'gpt-4o-mini',
    },
    { worker: false },
  );
  const env = loadEnv(stack.env.vars);
  worker = await startWorker(env, createLogger(env, 'test-worker'), { metrics: new TaskerMetrics() });
  db = createDb(stack.env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  for (const tenant of ['acme', 'globex'] as const)
    keys[tenant] = (
      await store.create({ tenantId: tenant, name: tenant, scopes: ['tasks:write', 'tasks:read'] })
    ).key;
}, 60_000);

afterAll(async () => {
  await worker?.close();
  await db?.close();
  await stack?.close();
  await fake?.close();
});

async function run(
  tenant: keyof typeof keys,
  name: string,
  input: object,
  options: object = {},
): Promise<TaskBody> {
  const headers = { authorization: `Bearer ${keys[tenant]}`, 'content-type': 'application/json' };
  const res = await fetch(`${stack.url}/tasks`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name, input, ...options }),
  });
  const created = (await res.json()) as { id: string };
  expect(res.status, JSON.stringify(created)).toBe(201);
  return waitFor(
    async () => {
      const task = (await (await fetch(`${stack.url}/tasks/${created.id}`, { headers })).json()) as TaskBody;
      return ['COMPLETED', 'FAILED'].includes(task.status) ? task : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50, what: `task ${created.id}` },
  );
}

describe(`the identical-prompt cache (${testMode} mode)`, () => {
  it('answers the same prompt of the same tenant from the cache: no provider call, marked cached, no cost', async () => {
    const first = await run('acme', 'cached_answer', { question: 'what is the cache for' });
    expect(first.status).toBe('COMPLETED');
    expect(first.output).toEqual({ text: 'echo: what is the cache for', cached: false });
    expect(first.usage?.cached).toBeUndefined();
    expect(fake.requests).toHaveLength(1);

    const second = await run('acme', 'cached_answer', { question: 'what is the cache for' });
    expect(second.status).toBe('COMPLETED');
    expect(second.output).toEqual({ text: 'echo: what is the cache for', cached: true });
    expect(fake.requests).toHaveLength(1); // no provider call
    expect(second.usage).toMatchObject({
      promptTokens: 0,
      completionTokens: 0,
      costUsd: 0,
      calls: 1,
      cachedCalls: 1,
      cached: true,
      attempts: [{ cached: true }],
    });
    const ledger = await db.sql<{ cached: boolean; cost: string }[]>`
      select cached, cost_usd::text as cost from task_llm_calls where task_id = ${second.id}`;
    expect(ledger).toEqual([{ cached: true, cost: '0.0000000000' }]);
  });

  it("is a miss for another tenant's identical prompt", async () => {
    const theirs = await run('globex', 'cached_answer', { question: 'what is the cache for' });
    expect(theirs.output).toEqual({ text: 'echo: what is the cache for', cached: false });
    expect(fake.requests).toHaveLength(2);
    // Each tenant now has its own entry; acme's still answers acme.
    const [entries] = await db.sql<{ n: number }[]>`select count(*)::int as n from llm_cache`;
    expect(entries?.n).toBe(2);
  });

  it('is a miss for other parameters, and for a type that did not opt in', async () => {
    const warmer = await run('acme', 'cached_answer', {
      question: 'what is the cache for',
      temperature: 0.5,
    });
    expect(warmer.output).toMatchObject({ cached: false });
    expect(fake.requests).toHaveLength(3);
    for (let i = 0; i < 2; i++) {
      const plain = await run('acme', 'query_chatgpt', { prompt: 'what is the cache for' });
      expect(plain.status).toBe('COMPLETED');
    }
    expect(fake.requests).toHaveLength(5);
  });

  it('is a miss once the TTL has passed', async () => {
    const first = await run('acme', 'briefly_cached_answer', { question: 'short lived' });
    expect(first.output).toMatchObject({ cached: false });
    const calls = fake.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 600));
    const later = await run('acme', 'briefly_cached_answer', { question: 'short lived' });
    expect(later.output).toMatchObject({ cached: false });
    expect(fake.requests.length).toBe(calls + 1);
  });

  it("a submission's cache_ttl_ms turns the cache on for a type that did not opt in, or off (0)", async () => {
    const calls = fake.requests.length;
    const first = await run('acme', 'query_chatgpt', { prompt: 'cache me please' }, { cache_ttl_ms: 60_000 });
    const second = await run(
      'acme',
      'query_chatgpt',
      { prompt: 'cache me please' },
      { cache_ttl_ms: 60_000 },
    );
    expect(second.output).toBe(first.output);
    expect(second.usage).toMatchObject({ cached: true, costUsd: 0 });
    expect(fake.requests.length).toBe(calls + 1);
    // 0: no cache, though the type opted in.
    await run('acme', 'cached_answer', { question: 'never cached' }, { cache_ttl_ms: 0 });
    const again = await run('acme', 'cached_answer', { question: 'never cached' }, { cache_ttl_ms: 0 });
    expect(again.output).toMatchObject({ cached: false });
    expect(fake.requests.length).toBe(calls + 3);
    // A type that calls no model has nothing to cache: 400 naming the field; and a TTL over 7 days.
    const headers = { authorization: `Bearer ${keys.acme}`, 'content-type': 'application/json' };
    for (const body of [
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, cache_ttl_ms: 1000 },
      { name: 'query_chatgpt', input: { prompt: 'x' }, cache_ttl_ms: 8 * 24 * 3600_000 },
    ]) {
      const res = await fetch(`${stack.url}/tasks`, { method: 'POST', headers, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      const error = (await res.json()) as { issues: { path: string }[] };
      expect(error.issues.map((i) => i.path)).toEqual(['cache_ttl_ms']);
    }
  });

  it('the sweep deletes expired entries and keeps the live ones', async () => {
    const cache = new LlmCacheStore(db.db);
    await cache.put('acme', 'gone', { model: 'm', reply: 'r' }, 1);
    await cache.put('acme', 'live', { model: 'm', reply: 'kept' }, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await cache.get('acme', 'gone')).toBeUndefined();
    // (The worker of this file sweeps too: the expired entry may be gone before this call, which
    // then deletes nothing, so what it answers is not counted on.)
    await cache.prune(10_000);
    const [left] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from llm_cache where expires_at <= now()`;
    expect(left?.n).toBe(0);
    expect(await cache.get('acme', 'live')).toMatchObject({ reply: 'kept' });
    // A tenant over its cap keeps its newest.
    for (let i = 0; i < 3; i++) {
      await cache.put('capped', `k${i}`, { model: 'm', reply: `r${i}` }, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 10)); // distinct created_at
    }
    await cache.prune(2);
    const kept = await db.sql<
      { key: string }[]
    >`select key from llm_cache where tenant_id = 'capped' order by key`;
    expect(kept.map((r) => r.key)).toEqual(['k1', 'k2']);
    // A sweep deletes at most its batch, the oldest first.
    for (const key of ['k3', 'k4']) {
      await cache.put('capped', key, { model: 'm', reply: key }, 60_000);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const keys = async () =>
      (
        await db.sql<{ key: string }[]>`select key from llm_cache where tenant_id = 'capped' order by key`
      ).map((r) => r.key);
    // (What prune answers counts the expired too: other tests' entries may expire meanwhile.)
    await cache.prune(2, 1);
    expect(await keys()).toEqual(['k2', 'k3', 'k4']);
    await cache.prune(2, 1);
    expect(await keys()).toEqual(['k3', 'k4']);
  });
});
