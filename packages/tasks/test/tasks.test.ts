import { type FakeOpenAI, startFakeOpenAI } from '@tasker/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createLlm,
  getTaskDefinition,
  longestRun,
  NonRetryableError,
  type TaskConfig,
  type TaskContext,
  taskDefinitions,
  taskNames,
} from '../src/index.ts';

function context(
  config: TaskConfig,
  signal = new AbortController().signal,
  progress: TaskContext['progress'] = () => {},
): TaskContext {
  return {
    taskId: '00000000-0000-4000-8000-000000000000',
    attempt: 1,
    signal,
    progress,
    config,
    llm: createLlm({ config, signal, progress, record: async () => {} }),
    // No handler of the catalog uses durable steps yet: a step runs its function, a sleep returns.
    step: async (_id, fn) => fn(),
    sleep: async () => {},
    sleepUntil: async () => {},
    createToken: async () => {
      throw new Error('no handler of these tests makes wait tokens');
    },
    waitForToken: async () => {
      throw new Error('no handler of these tests waits for tokens');
    },
    run: async () => {
      throw new Error('no handler of these tests runs child tasks');
    },
    runMany: async () => {
      throw new Error('no handler of these tests runs child tasks');
    },
  };
}

const noKey: TaskConfig = { openai: { model: 'gpt-test' } };

describe('catalog', () => {
  it('holds the three task types of the old service and summarize_documents, each with an example that validates', () => {
    expect(taskNames).toEqual([
      'sum_two_numbers',
      'query_chatgpt',
      'find_longest_consecutive_letters',
      'summarize_documents',
    ]);
    for (const definition of taskDefinitions) {
      expect(definition.input.safeParse(definition.example).success).toBe(true);
      expect(definition.retry.attempts).toBeGreaterThanOrEqual(1);
    }
    expect(getTaskDefinition('nope')).toBeUndefined();
  });

  it("documents each type's result with an exampleOutput that fits its schema, and is what its example gives", async () => {
    for (const definition of taskDefinitions) {
      expect(definition.output.safeParse(definition.exampleOutput).success, definition.name).toBe(true);
    }
    // The types that call no outside service: run them on their example.
    for (const name of ['sum_two_numbers', 'find_longest_consecutive_letters']) {
      const definition = getTaskDefinition(name);
      expect(await definition?.run(definition.example as never, context(noKey))).toEqual(
        definition?.exampleOutput,
      );
    }
  });
});

describe('summarize_documents', () => {
  const summarize = getTaskDefinition('summarize_documents');
  it('takes 1 to 100 documents, none empty or longer than its bound', () => {
    const ok = (documents: unknown) => summarize?.input.safeParse({ documents }).success;
    expect(ok(['a'])).toBe(true);
    expect(ok(Array.from({ length: 100 }, () => 'doc'))).toBe(true);
    expect(ok([])).toBe(false);
    expect(ok(Array.from({ length: 101 }, () => 'doc'))).toBe(false);
    expect(ok(['a', ''])).toBe(false);
    expect(ok(['x'.repeat(30_001)])).toBe(false);
    expect(summarize?.input.safeParse({ documents: ['a'], extra: 1 }).success).toBe(false);
  });

  it('runs one query_chatgpt child per document, at once, and keeps their order', async () => {
    const calls: unknown[] = [];
    const ctx: TaskContext = {
      ...context(noKey),
      runMany: (async (children: readonly { name: string; input: { prompt: string } }[]) => {
        calls.push(children);
        return children.map((c) => `summary of ${c.input.prompt.split('\n\n')[1]}`);
      }) as TaskContext['runMany'],
    };
    expect(await summarize?.run({ documents: ['one', 'two'] }, ctx)).toEqual({
      summaries: ['summary of one', 'summary of two'],
    });
    expect(calls).toHaveLength(1);
    // With require_approval it waits for a token: {approved: false} fails it.
    const asking = (approved: unknown): TaskContext => ({
      ...ctx,
      waitForToken: (async () => approved) as TaskContext['waitForToken'],
    });
    expect(
      await summarize?.run({ documents: ['one'], require_approval: true }, asking({ approved: true })),
    ).toEqual({ summaries: ['summary of one'] });
    await expect(
      summarize?.run({ documents: ['one'], require_approval: true }, asking({ approved: false })),
    ).rejects.toMatchObject({ name: 'NotApprovedError' });
    await expect(
      summarize?.run({ documents: ['one'], require_approval: true }, asking('yes')),
    ).rejects.toMatchObject({ name: 'NotApprovedError' });
    expect(calls[0]).toMatchObject([
      { name: 'query_chatgpt', input: { prompt: expect.stringContaining('one') } },
      { name: 'query_chatgpt', input: { prompt: expect.stringContaining('two') } },
    ]);
  });
});

describe('sum_two_numbers', () => {
  const sum = getTaskDefinition('sum_two_numbers');
  it('adds, keeping 0 as 0', async () => {
    expect(await sum?.run({ a: 5, b: 10 }, context(noKey))).toBe(15);
    expect(await sum?.run({ a: 0, b: 0 }, context(noKey))).toBe(0);
    expect(await sum?.run({ a: -1.5, b: 0.25 }, context(noKey))).toBe(-1.25);
  });
  it('rejects missing, wrongly typed, unknown and overflowing parameters', () => {
    expect(sum?.input.safeParse({ a: 1 }).success).toBe(false);
    expect(sum?.input.safeParse({ a: '1', b: 2 }).success).toBe(false);
    expect(sum?.input.safeParse({ a: 1, b: 2, c: 3 }).success).toBe(false);
    expect(sum?.input.safeParse({ a: 1e308, b: 1e308 }).success).toBe(false);
  });
});

describe('find_longest_consecutive_letters', () => {
  it.each([
    ['aaabbccccdd', 4],
    ['😀😀😀', 3],
    ['', 0],
    ['abc', 1],
    ['aAAa', 2],
    ['ab😀😀b', 2],
    ['x'.repeat(100_000), 100_000],
  ])('%j → %i (Unicode code points)', (text, expected) => {
    expect(longestRun(text)).toBe(expected);
  });
});

describe('query_chatgpt against a local fake OpenAI server', () => {
  const chat = getTaskDefinition('query_chatgpt');
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });
  const config = (baseURL: string): TaskConfig => ({
    openai: { apiKey: 'sk-test', baseURL, model: 'gpt-test' },
  });

  it('is unavailable without an API key, with a message naming the variable', () => {
    expect(chat?.unavailable?.(noKey)).toMatch(/OPENAI_API_KEY/);
    expect(chat?.unavailable?.({ openai: { apiKey: 'sk', model: 'm' } })).toBeUndefined();
  });

  it("returns the model's reply, streamed as growing progress, and sends the configured model and key", async () => {
    fake = await startFakeOpenAI({ reply: (prompt) => `You said: ${prompt}` });
    const partials: unknown[] = [];
    const ctx = context(config(fake.baseURL), undefined, (p) => partials.push(p.partial));
    const reply = await chat?.run({ prompt: 'Tell me a joke.' }, ctx);
    expect(reply).toBe('You said: Tell me a joke.');
    expect(partials).toEqual([
      'You ',
      'You said: ',
      'You said: Tell ',
      'You said: Tell me ',
      'You said: Tell me a ',
      'You said: Tell me a joke.',
    ]);
    expect(fake.requests[0]?.body.stream).toBe(true);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.body.model).toBe('gpt-test');
    expect(fake.requests[0]?.authorization).toBe('Bearer sk-test');
  });

  it('fails without retry on a 4xx the API will repeat, and retryably on a 5xx', async () => {
    fake = await startFakeOpenAI({ failWith: 401 });
    await expect(chat?.run({ prompt: 'x' }, context(config(fake.baseURL)))).rejects.toBeInstanceOf(
      NonRetryableError,
    );
    await fake.close();
    fake = await startFakeOpenAI({ failWith: 503 });
    const failure = chat?.run({ prompt: 'x' }, context(config(fake.baseURL)));
    await expect(failure).rejects.toThrow();
    await expect(failure).rejects.not.toBeInstanceOf(NonRetryableError);
    expect(fake.requests).toHaveLength(1); // no hidden retries inside the handler
  });

  it('aborts the HTTP request when its signal fires', async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 5_000 });
    const controller = new AbortController();
    const running = chat?.run({ prompt: 'slow' }, context(config(fake.baseURL), controller.signal));
    await new Promise((resolve) => setTimeout(resolve, 200));
    controller.abort(new Error('cancelled'));
    await expect(running).rejects.toThrow();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fake.requests[0]?.aborted).toBe(true);
  });
});
