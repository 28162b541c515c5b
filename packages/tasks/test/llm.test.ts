import { type FakeOpenAI, type FakeOpenAIOptions, startFakeOpenAI } from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  costOf,
  createLlm,
  DEFAULT_LLM_PRICES,
  defineTask,
  getTaskDefinition,
  type LlmBounds,
  type LlmCallUsage,
  LlmProviderError,
  NonRetryableError,
  retryAfterFromHeaders,
  type TaskConfig,
  type TaskProgress,
} from '../src/index.ts';

const fakes: FakeOpenAI[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});
const fake = async (options: FakeOpenAIOptions = {}) => {
  const server = await startFakeOpenAI(options);
  fakes.push(server);
  return server;
};

/** An `llm` over the given config, recording its calls and progress. */
function llmOf(config: TaskConfig, bounds?: LlmBounds, signal = new AbortController().signal) {
  const recorded: LlmCallUsage[] = [];
  const partials: unknown[] = [];
  const llm = createLlm({
    config,
    signal,
    bounds,
    progress: (p: TaskProgress) => partials.push(p.partial),
    record: async (usage) => {
      recorded.push(usage);
    },
  });
  return { llm, recorded, partials };
}

const openai = (baseURL: string, extra: Partial<TaskConfig['openai']> = {}): TaskConfig => ({
  openai: { apiKey: 'sk-test', baseURL, model: 'gpt-4o-mini', ...extra },
});

describe('ctx.llm.chat against the fake OpenAI server', () => {
  it('streams the reply into progress, asks for usage, and records tokens and cost before answering', async () => {
    const server = await fake({ reply: () => 'one two three' });
    const { llm, recorded, partials } = llmOf(openai(server.baseURL), { maxTokens: 64 });
    const reply = await llm.chat({ prompt: 'say three words', system: 'be brief' });
    expect(reply).toMatchObject({ text: 'one two three', model: 'gpt-4o-mini', fallback: false });
    expect(partials).toEqual(['one ', 'one two ', 'one two three']);
    const sent = server.requests[0]?.body;
    expect(sent).toMatchObject({
      model: 'gpt-4o-mini',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'say three words' },
      ],
    });
    // The fake counts words: 2 + 3 prompt, 3 completion.
    const usage = {
      baseURL: server.baseURL,
      model: 'gpt-4o-mini',
      promptTokens: 5,
      completionTokens: 3,
      costUsd: costOf(DEFAULT_LLM_PRICES, 'gpt-4o-mini', 5, 3),
    };
    expect(recorded).toEqual([usage]);
    expect(reply.usage).toEqual(usage);
    expect(usage.costUsd).toBeCloseTo((5 * 0.15 + 3 * 0.6) / 1e6, 12);
  });

  it('records a non-streamed answer too; a call of its own max_tokens wins over the bound', async () => {
    const server = await fake({ reply: () => 'a b' });
    const { llm, recorded, partials } = llmOf(openai(server.baseURL), { maxTokens: 64 });
    const reply = await llm.chat({
      messages: [{ role: 'user', content: 'x y z' }],
      stream: false,
      maxTokens: 5,
    });
    expect(reply.text).toBe('a b');
    expect(partials).toEqual([]);
    expect(server.requests[0]?.body).toMatchObject({ stream: false, max_tokens: 5 });
    expect(recorded).toMatchObject([{ promptTokens: 3, completionTokens: 2 }]);
  });

  it('records the tokens of a model without a price, at cost null', async () => {
    const server = await fake({ reply: () => 'ok' });
    const { llm, recorded } = llmOf(openai(server.baseURL, { model: 'my-own-model' }));
    await llm.chat({ prompt: 'hi' });
    expect(recorded).toEqual([
      { baseURL: server.baseURL, model: 'my-own-model', promptTokens: 1, completionTokens: 1, costUsd: null },
    ]);
  });

  it('records nothing when the provider reports no usage', async () => {
    const server = await fake({ reportUsage: false });
    const { llm, recorded } = llmOf(openai(server.baseURL));
    const reply = await llm.chat({ prompt: 'hi' });
    expect(reply.text).toBe('echo: hi');
    expect(reply.usage).toBeUndefined();
    expect(recorded).toEqual([]);
  });

  it('a 429 fails retryably with its retry-after, naming the provider and what it said', async () => {
    const server = await fake({
      fail: () => ({ status: 429, headers: { 'retry-after': '2' }, message: 'Rate limit reached' }),
    });
    const { llm, recorded } = llmOf(openai(server.baseURL));
    const error = await llm.chat({ prompt: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmProviderError);
    expect(error).not.toBeInstanceOf(NonRetryableError);
    expect((error as LlmProviderError).retryAfterMs).toBe(2000);
    expect((error as Error).message).toMatch(
      new RegExp(
        `^gpt-4o-mini at ${server.baseURL} answered 429 \\(retry-after 2000 ms\\): .*Rate limit reached`,
      ),
    );
    expect(server.requests).toHaveLength(1); // no retry inside the handler
    expect(recorded).toEqual([]);
  });

  it('a 500 fails retryably without a retry-after; retry-after-ms is read too', async () => {
    const plain = await fake({ fail: () => ({ status: 500 }) });
    const first = await llmOf(openai(plain.baseURL))
      .llm.chat({ prompt: 'hi' })
      .catch((e: unknown) => e);
    expect(first).toBeInstanceOf(LlmProviderError);
    expect((first as LlmProviderError).retryAfterMs).toBeUndefined();
    expect((first as Error).message).toContain('answered 500');
    const precise = await fake({ fail: () => ({ status: 503, headers: { 'retry-after-ms': '250' } }) });
    const second = await llmOf(openai(precise.baseURL))
      .llm.chat({ prompt: 'hi' })
      .catch((e: unknown) => e);
    expect((second as LlmProviderError).retryAfterMs).toBe(250);
  });

  it('a 400 fails for good, and the fallback is not tried', async () => {
    const server = await fake({ fail: () => ({ status: 400, message: 'content policy' }) });
    const fallback = await fake();
    const { llm } = llmOf(openai(server.baseURL, { fallbackBaseURL: fallback.baseURL }));
    const error = await llm.chat({ prompt: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonRetryableError);
    expect((error as Error).message).toMatch(/^gpt-4o-mini at .* answered 400: .*content policy/);
    expect(fallback.requests).toHaveLength(0);
  });

  it('a retryable failure tries the fallback model and base URL, whose call is recorded', async () => {
    const server = await fake({ fail: () => ({ status: 429, headers: { 'retry-after': '1' } }) });
    const fallback = await fake({ reply: () => 'from the fallback' });
    const { llm, recorded } = llmOf(
      openai(server.baseURL, {
        fallbackModel: 'gpt-4o',
        fallbackBaseURL: fallback.baseURL,
        fallbackApiKey: 'sk-fallback',
      }),
    );
    const reply = await llm.chat({ prompt: 'hi there' });
    expect(reply).toMatchObject({ text: 'from the fallback', model: 'gpt-4o', fallback: true });
    expect(server.requests).toHaveLength(1);
    expect(fallback.requests[0]?.body.model).toBe('gpt-4o');
    expect(fallback.requests[0]?.authorization).toBe('Bearer sk-fallback');
    expect(recorded).toEqual([
      {
        baseURL: fallback.baseURL,
        model: 'gpt-4o',
        promptTokens: 2,
        completionTokens: 3,
        costUsd: costOf(DEFAULT_LLM_PRICES, 'gpt-4o', 2, 3),
      },
    ]);
  });

  it('both failing: a retryable error naming both, with the first one’s retry-after', async () => {
    const server = await fake({ fail: () => ({ status: 429, headers: { 'retry-after': '3' } }) });
    const { llm } = llmOf(openai(server.baseURL, { fallbackModel: 'gpt-4o' })); // same base URL
    const error = await llm.chat({ prompt: 'hi' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmProviderError);
    expect((error as LlmProviderError).retryAfterMs).toBe(3000);
    expect((error as Error).message).toMatch(
      /^gpt-4o-mini at .* answered 429 .*; fallback gpt-4o at .* answered 429/,
    );
    expect(server.requests.map((r) => r.body.model)).toEqual(['gpt-4o-mini', 'gpt-4o']);
  });

  it('no answer at all is retryable too (a connection refused)', async () => {
    const server = await fake();
    const { baseURL } = server;
    await server.close();
    fakes.splice(fakes.indexOf(server), 1);
    const error = await llmOf(openai(baseURL))
      .llm.chat({ prompt: 'hi' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmProviderError);
    expect((error as Error).message).toContain(`gpt-4o-mini at ${baseURL} failed:`);
  });

  it('refuses a prompt over maxPromptChars for good, before any request', async () => {
    const server = await fake();
    const { llm } = llmOf(openai(server.baseURL), { maxPromptChars: 10 });
    const error = await llm.chat({ prompt: 'x'.repeat(8), system: 'abc' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NonRetryableError);
    expect((error as Error).message).toMatch(/11 characters, more than .* maxPromptChars \(10\)/);
    expect(server.requests).toHaveLength(0);
  });

  it('gives up the request when its signal fires, recording nothing', async () => {
    const server = await fake({ chunkDelayMs: 2000, reply: () => 'a b c' });
    const controller = new AbortController();
    const { llm, recorded } = llmOf(openai(server.baseURL), undefined, controller.signal);
    const running = llm.chat({ prompt: 'slow' });
    setTimeout(() => controller.abort(new Error('cancelled')), 200);
    await expect(running).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.requests[0]?.aborted).toBe(true);
    expect(recorded).toEqual([]);
  });
});

describe('defineTask({ llm })', () => {
  const summarize = defineTask({
    name: 'summarize_test',
    description: 'test',
    input: z
      .strictObject({ text: z.string().describe('What to summarize'), words: z.number().int() })
      .refine((v) => v.words > 0, { message: 'words must be positive', path: ['words'] }),
    output: z.string(),
    llm: { promptField: 'text', maxPromptChars: 20, maxTokens: 100 },
    run: async ({ text }, { llm }) => (await llm.chat({ prompt: text })).text,
  });

  it('bounds the prompt field in the input schema: a longer one is an issue naming it, the schema says so', () => {
    const over = summarize.input.safeParse({ text: 'x'.repeat(21), words: 3 });
    expect(over.success).toBe(false);
    expect(over.error?.issues).toMatchObject([
      {
        path: ['text'],
        code: 'too_big',
        message: 'at most 20 characters (the prompt limit of summarize_test)',
      },
    ]);
    expect(summarize.input.safeParse({ text: 'x'.repeat(20), words: 3 }).success).toBe(true);
    // The schema's own strictness and refinement stay.
    expect(summarize.input.safeParse({ text: 'x', words: 3, extra: 1 }).success).toBe(false);
    expect(summarize.input.safeParse({ text: 'x', words: 0 }).success).toBe(false);
    expect(z.toJSONSchema(summarize.input)).toMatchObject({
      properties: { text: { type: 'string', maxLength: 20, description: 'What to summarize' } },
      additionalProperties: false,
    });
  });

  it('is unavailable without OPENAI_API_KEY, naming it', () => {
    expect(summarize.unavailable?.({ openai: { model: 'm' } })).toMatch(/summarize_test .*OPENAI_API_KEY/);
    expect(summarize.unavailable?.({ openai: { model: 'm', apiKey: 'sk' } })).toBeUndefined();
  });

  it('refuses a prompt field that is no string field, and bounds that are no positive integer', () => {
    const input = z.strictObject({ prompt: z.number() });
    const base = { name: 'bad', description: 'd', output: z.string(), run: () => '' };
    expect(() => defineTask({ ...base, input, llm: { maxPromptChars: 5 } })).toThrow(/promptField "prompt"/);
    expect(() =>
      defineTask({ ...base, input: z.strictObject({ prompt: z.string() }), llm: { maxTokens: 0 } }),
    ).toThrow(/llm.maxTokens/);
  });

  it('query_chatgpt sets its bounds: a prompt of 32,000 characters at most, 4,096 tokens', () => {
    const chat = getTaskDefinition('query_chatgpt');
    expect(chat?.llm).toEqual({ maxPromptChars: 32_000, maxTokens: 4096 });
    expect(chat?.input.safeParse({ prompt: 'x'.repeat(32_001) }).success).toBe(false);
  });
});

describe('retryAfterFromHeaders', () => {
  const headers = (entries: Record<string, string>) => new Headers(entries);
  it('reads retry-after-ms, retry-after in seconds, and an HTTP date', () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    expect(retryAfterFromHeaders(headers({ 'retry-after-ms': '1500' }), now)).toBe(1500);
    expect(retryAfterFromHeaders(headers({ 'retry-after': '7' }), now)).toBe(7000);
    expect(retryAfterFromHeaders(headers({ 'retry-after': 'Thu, 03 Dec 2026 12:00:30 GMT' }), now)).toBe(
      30_000,
    );
    expect(retryAfterFromHeaders(headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
    expect(retryAfterFromHeaders(headers({}), now)).toBeUndefined();
    expect(retryAfterFromHeaders(headers({ 'retry-after': '-3' }), now)).toBe(0);
  });
});
