import { Validator } from '@seriousme/openapi-schema-validator';
import { type FakeOpenAI, onRedis, startFakeOpenAI } from '@tasker/testing';
import { createTRPCClient, httpBatchLink } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppRouter } from '../src/index.ts';
import { awaitOutput, postJson, runTask, type Stack, startStack } from './helpers.ts';

let stack: Stack;
let fake: FakeOpenAI;

beforeAll(async () => {
  fake = await startFakeOpenAI({ reply: (prompt) => `Why did the ${prompt}` });
  stack = await startStack({
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: fake.baseURL,
    OPENAI_MODEL: 'gpt-test',
  });
});

afterAll(async () => {
  await stack?.close();
  await fake?.close();
});

describe('the old service contract', () => {
  it('sum_two_numbers {a:5,b:10} is COMPLETED with 15 within one second, in exactly the old shape', async () => {
    const started = performance.now();
    const res = await postJson(`${stack.url}/run-task`, {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 5, b: 10 },
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(['task_uuid']);
    const output = await awaitOutput(stack.url, res.body.task_uuid as string);
    expect(performance.now() - started).toBeLessThan(1000);
    const raw = await fetch(`${stack.url}/get-task-output?task_uuid=${res.body.task_uuid}`);
    expect(await raw.json()).toEqual({ task_output: { status: 'COMPLETED', result: 15, error: null } });
    expect(output.result).toBe(15);
  });

  it('keeps a result of 0 as 0, not null', async () => {
    const output = await awaitOutput(stack.url, await runTask(stack.url, 'sum_two_numbers', { a: 0, b: 0 }));
    expect(output).toEqual({ status: 'COMPLETED', result: 0, error: null });
  });

  it.each([
    ['aaabbccccdd', 4],
    ['😀😀😀', 3],
    ['', 0],
  ])('find_longest_consecutive_letters %j gives %i', async (string, expected) => {
    const output = await awaitOutput(
      stack.url,
      await runTask(stack.url, 'find_longest_consecutive_letters', { string }),
    );
    expect(output).toEqual({ status: 'COMPLETED', result: expected, error: null });
  });

  it("query_chatgpt gives the (fake) model's reply", async () => {
    const output = await awaitOutput(
      stack.url,
      await runTask(stack.url, 'query_chatgpt', { prompt: 'Tell me a joke.' }),
    );
    expect(output).toEqual({ status: 'COMPLETED', result: 'Why did the Tell me a joke.', error: null });
    expect(fake.requests.at(-1)?.body.model).toBe('gpt-test');
  });

  it('answers 404 {"error": "Task not found"} for an unknown id', async () => {
    const res = await fetch(`${stack.url}/get-task-output?task_uuid=${crypto.randomUUID()}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'Task not found' });
  });
});

describe('newer routes', () => {
  it('GET /tasks/{id} reports the full record', async () => {
    const id = await runTask(stack.url, 'sum_two_numbers', { a: 2, b: 3 });
    await awaitOutput(stack.url, id);
    const res = await fetch(`${stack.url}/tasks/${id}`);
    expect(res.status).toBe(200);
    const task = (await res.json()) as { startedAt: string; finishedAt: string };
    expect(task).toMatchObject({
      id,
      name: 'sum_two_numbers',
      status: 'COMPLETED',
      input: { a: 2, b: 3 },
      output: 5,
      error: null,
      attempts: 1,
      maxAttempts: 1,
    });
    expect(Date.parse(task.finishedAt)).toBeGreaterThanOrEqual(Date.parse(task.startedAt));
  });

  it('GET /task-types lists each type with the JSON Schema of its parameters', async () => {
    const types = (await (await fetch(`${stack.url}/task-types`)).json()) as {
      name: string;
      parameters: { required?: string[] };
    }[];
    expect(types.map((t) => t.name)).toEqual([
      'sum_two_numbers',
      'query_chatgpt',
      'find_longest_consecutive_letters',
      'summarize_documents',
    ]);
    expect(types[0]?.parameters.required).toEqual(['a', 'b']);
  });

  it('serves the same procedures over tRPC, typed from the router', async () => {
    const trpc = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${stack.url}/trpc` })] });
    const { task_uuid } = await trpc.runTask.mutate({
      task_name: 'sum_two_numbers',
      task_parameters: { a: 20, b: 22 },
    });
    await awaitOutput(stack.url, task_uuid);
    const task = await trpc.getTask.query({ id: task_uuid });
    expect(task.output).toBe(42);
    expect((await trpc.getTaskOutput.query({ task_uuid })).task_output).toEqual({
      status: 'COMPLETED',
      result: 42,
      error: null,
    });
    await expect(trpc.getTask.query({ id: crypto.randomUUID() })).rejects.toMatchObject({
      data: { code: 'NOT_FOUND', httpStatus: 404 },
    });
  });
});

describe('health', () => {
  it('/healthz and /readyz answer ok when PostgreSQL (and Redis, in that mode) are up', async () => {
    expect(await (await fetch(`${stack.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${stack.url}/readyz`);
    expect(ready.status).toBe(200);
    const dependencies = onRedis ? { postgres: 'ok', redis: 'ok' } : { postgres: 'ok' };
    expect(await ready.json()).toEqual({ status: 'ok', dependencies });
  });
});

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3 document describing both old routes with request and response schemas', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: walking an arbitrary JSON document
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as any;
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    const run = doc.paths['/run-task'].post;
    const runBody = run.requestBody.content['application/json'].schema;
    expect(runBody.required).toEqual(expect.arrayContaining(['task_name', 'task_parameters']));
    expect(runBody.properties.task_name.enum).toContain('sum_two_numbers');
    expect(run.responses['200'].content['application/json'].schema.properties).toHaveProperty('task_uuid');
    expect(run.responses['400'].content['application/json'].schema.$ref).toBe('#/components/schemas/Error');
    const get = doc.paths['/get-task-output'].get;
    expect(get.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual([
      'query:task_uuid',
    ]);
    const out = get.responses['200'].content['application/json'].schema.properties.task_output;
    expect(out.$ref ?? out).toBeTruthy();
    expect(get.responses['404']).toBeDefined();
  });
});
