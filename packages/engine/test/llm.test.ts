import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TaskRow } from '@tasker/db';
import { DEFAULT_LLM_PRICES, LlmProviderError, MAX_RETRY_AFTER_MS, RetryAfterError } from '@tasker/tasks';
import type { MinimalJob } from 'bullmq';
import { describe, expect, it } from 'vitest';
import {
  backoffStrategy,
  ConfigError,
  jobOptions,
  loadEnv,
  TaskerMetrics,
  taskConfig,
} from '../src/index.ts';

const db = { DATABASE_URL: 'postgres://root@127.0.0.1:5432/tasker' };

describe('LLM configuration', () => {
  it('has no fallback and the repository price table by default', () => {
    const config = taskConfig(loadEnv(db));
    expect(config.openai.fallbackModel).toBeUndefined();
    expect(config.openai.fallbackBaseURL).toBeUndefined();
    expect(config.llmPrices).toEqual(DEFAULT_LLM_PRICES);
  });

  it('takes a fallback model, base URL and key; a fallback base URL that is no URL is refused, named', () => {
    const config = taskConfig(
      loadEnv({
        ...db,
        OPENAI_FALLBACK_MODEL: 'gpt-4o',
        OPENAI_FALLBACK_BASE_URL: 'http://127.0.0.1:9/v1',
        OPENAI_FALLBACK_API_KEY: 'sk-2',
      }),
    );
    expect(config.openai).toMatchObject({
      fallbackModel: 'gpt-4o',
      fallbackBaseURL: 'http://127.0.0.1:9/v1',
      fallbackApiKey: 'sk-2',
    });
    expect(() => loadEnv({ ...db, OPENAI_FALLBACK_BASE_URL: 'not a url' })).toThrow(
      /OPENAI_FALLBACK_BASE_URL/,
    );
  });

  it('lays LLM_PRICES_FILE, then LLM_PRICES, over the table, model by model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tasker-prices-'));
    const file = join(dir, 'prices.json');
    writeFileSync(
      file,
      JSON.stringify({
        'gpt-4o-mini': { input_per_1m: 1, output_per_1m: 2 },
        'my-model': { input_per_1m: 3, output_per_1m: 4 },
      }),
    );
    const prices = taskConfig(
      loadEnv({
        ...db,
        LLM_PRICES_FILE: file,
        LLM_PRICES: '{"my-model": {"input_per_1m": 5, "output_per_1m": 6}}',
      }),
    ).llmPrices;
    expect(prices?.['gpt-4o-mini']).toEqual({ input_per_1m: 1, output_per_1m: 2 });
    expect(prices?.['my-model']).toEqual({ input_per_1m: 5, output_per_1m: 6 });
    expect(prices?.['gpt-4o']).toEqual(DEFAULT_LLM_PRICES['gpt-4o']);
  });

  it('refuses prices that are not JSON, of the wrong shape, negative, or a file it cannot read, naming the variable', () => {
    const refused = (vars: Record<string, string>, pattern: RegExp) => {
      expect(() => loadEnv({ ...db, ...vars })).toThrow(ConfigError);
      expect(() => loadEnv({ ...db, ...vars })).toThrow(pattern);
    };
    refused({ LLM_PRICES: '{nope' }, /LLM_PRICES: not JSON/);
    refused({ LLM_PRICES: '{"m": {"input_per_1m": 1}}' }, /LLM_PRICES\.m\.output_per_1m/);
    refused({ LLM_PRICES: '{"m": {"input_per_1m": -1, "output_per_1m": 1}}' }, /LLM_PRICES\.m\.input_per_1m/);
    refused({ LLM_PRICES_FILE: '/nonexistent/prices.json' }, /LLM_PRICES_FILE: cannot read/);
  });
});

describe('backoffStrategy (BullMQ, every task worker)', () => {
  const job = (name: string) => {
    const opts = jobOptions({ id: 'x', name, priority: 0, runAfter: null, maxAttempts: 5 });
    return { opts } as unknown as MinimalJob;
  };

  it("waits what the error's retry-after asks, whatever the type's backoff", () => {
    const chat = job('query_chatgpt'); // exponential from 2 s
    expect(backoffStrategy(1, 'tasker-exponential', new LlmProviderError('429', 1500), chat)).toBe(1500);
    expect(backoffStrategy(3, 'tasker-exponential', new RetryAfterError('slow down', 0), chat)).toBe(0);
    // A far date is cut to the bound.
    expect(
      backoffStrategy(1, 'tasker-exponential', new RetryAfterError('later', 10 * 86_400_000), chat),
    ).toBe(MAX_RETRY_AFTER_MS);
  });

  it("otherwise is BullMQ's own exponential or fixed backoff with the job's delay and jitter", () => {
    const chat = job('query_chatgpt');
    const plain = new LlmProviderError('500, no retry-after', undefined);
    for (let i = 0; i < 20; i++) {
      const first = Number(backoffStrategy(1, 'tasker-exponential', plain, chat));
      expect(first).toBeGreaterThanOrEqual(1000); // 2 s, jitter 0.5
      expect(first).toBeLessThanOrEqual(2000);
      const third = Number(backoffStrategy(3, 'tasker-exponential', new Error('x'), chat));
      expect(third).toBeGreaterThanOrEqual(4000); // 8 s, jitter 0.5
      expect(third).toBeLessThanOrEqual(8000);
      const fixed = Number(
        backoffStrategy(3, 'tasker-fixed', new Error('x'), {
          opts: { backoff: { type: 'tasker-fixed', delay: 1000, jitter: 0.5 } },
        } as unknown as MinimalJob),
      );
      expect(fixed).toBeGreaterThanOrEqual(500);
      expect(fixed).toBeLessThanOrEqual(1000);
    }
  });

  it('refuses a backoff type it does not know', () => {
    expect(() => backoffStrategy(1, 'linear', new Error('x'), job('query_chatgpt'))).toThrow(
      /unknown backoff/,
    );
  });
});

describe('LLM metrics', () => {
  it('counts calls, tokens by kind and cost by task type and model, with no tenant label; an unpriced model adds tokens only', async () => {
    const metrics = new TaskerMetrics();
    const row = { id: 't', name: 'query_chatgpt', tenantId: 'acme' } as TaskRow;
    const call = { baseURL: 'http://x/v1', promptTokens: 10, completionTokens: 30 };
    metrics.observe({ kind: 'llm-call', row, usage: { ...call, model: 'gpt-4o-mini', costUsd: 0.0000195 } });
    metrics.observe({ kind: 'llm-call', row, usage: { ...call, model: 'gpt-4o-mini', costUsd: 0.0000195 } });
    metrics.observe({ kind: 'llm-call', row, usage: { ...call, model: 'mystery', costUsd: null } });
    const { body } = await metrics.scrape();
    const labels = 'task_type="query_chatgpt",model="gpt-4o-mini"';
    expect(body).toContain(`tasker_llm_calls_total{${labels}} 2`);
    expect(body).toContain(`tasker_llm_tokens_total{${labels},kind="prompt"} 20`);
    expect(body).toContain(`tasker_llm_tokens_total{${labels},kind="completion"} 60`);
    expect(body).toContain(`tasker_llm_cost_usd_total{${labels}} 0.000039`);
    expect(body).toContain(
      'tasker_llm_tokens_total{task_type="query_chatgpt",model="mystery",kind="prompt"} 10',
    );
    expect(body).not.toContain('tasker_llm_cost_usd_total{task_type="query_chatgpt",model="mystery"}');
    expect(body).not.toMatch(/tasker_llm_[a-z_]+\{[^}]*tenant/);
  });
});
