/**
 * POST /tasks: a task type by `name`, its parameters as `input`, and run-task's run options. It
 * answers 201 with the task record; every bad body is a 400 in the one error shape. The document
 * describes the body as one schema per task type, from the catalog.
 */

import { taskDefinitions, taskNames } from '@tasker/tasks';
import { waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, type Stack, startStack } from './helpers.ts';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

const getTask = async (id: string) => {
  const res = await fetch(`${stack.url}/tasks/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
};

describe('POST /tasks', () => {
  it('answers 201 with the task record, as GET /tasks/{id} gives it', async () => {
    const res = await postJson(`${stack.url}/tasks`, { name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      error: null,
      attemptErrors: [],
      priority: 0,
      maxAttempts: 1,
      cancelRequestedAt: null,
    });
    const stored = await getTask(res.body.id as string);
    // The same record, but for its durable steps and its children, which only GET /tasks/{id}
    // reads (none here).
    expect(stored.steps).toEqual([]);
    expect(stored.children).toMatchObject({ total: 0 });
    expect(stored.childTasks).toEqual([]);
    expect(stored.parentId).toBeNull();
    expect(Object.keys(res.body).sort()).toEqual(
      Object.keys(stored)
        .filter((k) => !['steps', 'children', 'childTasks'].includes(k))
        .sort(),
    );
    expect(stored).toMatchObject({ id: res.body.id, name: 'sum_two_numbers', input: { a: 1, b: 2 } });
    expect(stored.createdAt).toBe(res.body.createdAt);
  });

  /** The task once COMPLETED or FAILED. */
  const finished = (id: string) =>
    waitFor(
      async () => {
        const task = await getTask(id);
        return task.status === 'COMPLETED' || task.status === 'FAILED' ? task : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 20, what: 'the task to finish' },
    );

  it('runs the task to the right output', async () => {
    const res = await postJson(`${stack.url}/tasks`, { name: 'sum_two_numbers', input: { a: 5, b: 10 } });
    expect(res.status).toBe(201);
    const done = await finished(res.body.id as string);
    expect(done).toMatchObject({ status: 'COMPLETED', output: 15, error: null });

    const letters = await postJson(`${stack.url}/tasks`, {
      name: 'find_longest_consecutive_letters',
      input: { string: 'aaabbccccdd' },
    });
    expect(letters.status).toBe(201);
    const counted = await finished(letters.body.id as string);
    expect(counted).toMatchObject({ status: 'COMPLETED', output: 4 });
  });

  it("takes run-task's run options, in the same names", async () => {
    const res = await postJson(`${stack.url}/tasks`, {
      name: 'sum_two_numbers',
      input: { a: 1, b: 1 },
      priority: 7,
      max_attempts: 4,
      delay_ms: 60_000,
      idempotency_key: `create-${Date.now()}`,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'PENDING', priority: 7, maxAttempts: 4 });
    expect(Date.parse(res.body.runAfter as string)).toBeGreaterThan(Date.now() + 50_000);
  });

  const refusals: [string, unknown, string[]][] = [
    ['an unknown name', { name: 'sum_three_numbers', input: { a: 1, b: 2 } }, ['name']],
    ['no name', { input: { a: 1, b: 2 } }, ['name']],
    ['no input', { name: 'sum_two_numbers' }, ['input']],
    ['input that is not an object', { name: 'sum_two_numbers', input: [1, 2] }, ['input']],
    ['a parameter of the wrong type', { name: 'sum_two_numbers', input: { a: '5', b: 2 } }, ['input.a']],
    ['a missing parameter', { name: 'sum_two_numbers', input: { a: 1 } }, ['input.b']],
    [
      "another type's parameters",
      { name: 'sum_two_numbers', input: { prompt: 'hi' } },
      ['input.a', 'input.b', 'input'],
    ],
    [
      "run-task's field names",
      { task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } },
      ['name', 'input', ''],
    ],
    [
      'a run option out of range',
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, priority: 101 },
      ['priority'],
    ],
    [
      'both delay_ms and run_at',
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 10, run_at: new Date().toISOString() },
      ['run_at'],
    ],
  ];
  for (const [what, body, paths] of refusals) {
    it(`answers 400 in the error shape for ${what}`, async () => {
      const res = await postJson(`${stack.url}/tasks`, body);
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'BAD_REQUEST', status: 400, error: expect.any(String) });
      const issues = res.body.issues as { path: string; message: string }[];
      expect(issues.map((i) => i.path).sort()).toEqual([...paths].sort());
    });
  }

  it('answers 400, not 500, to a body that is not JSON or not an object', async () => {
    for (const body of ['{"name":', '[1,2]', '"sum_two_numbers"']) {
      const res = await fetch(`${stack.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(res.status, body).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_REQUEST', status: 400 });
    }
  });
});

describe('the document of POST /tasks', () => {
  interface Schema {
    $ref?: string;
    oneOf?: { $ref: string }[];
    discriminator?: { propertyName: string; mapping: Record<string, string> };
    properties?: Record<string, Schema & { enum?: string[] }>;
    required?: string[];
  }
  let doc: {
    paths: Record<
      string,
      Record<
        string,
        {
          requestBody: { content: Record<string, { schema: Schema }> };
          responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
        }
      >
    >;
    components: { schemas: Record<string, Schema> };
  };
  const resolve = (schema: Schema | undefined): Schema => {
    const name = schema?.$ref?.replace('#/components/schemas/', '');
    const found = name ? doc.components.schemas[name] : undefined;
    if (!found) throw new Error(`unresolved ${JSON.stringify(schema)}`);
    return found;
  };

  beforeAll(async () => {
    doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as typeof doc;
  });

  it('is a oneOf by name, one member per task type of the catalog, with an explicit mapping', () => {
    const operation = doc.paths['/tasks']?.post;
    const body = resolve(operation?.requestBody.content['application/json']?.schema);
    expect(body.discriminator?.propertyName).toBe('name');
    const mapping = body.discriminator?.mapping ?? {};
    expect(Object.keys(mapping)).toEqual([...taskNames]);
    expect(body.oneOf?.map((m) => m.$ref)).toEqual(Object.values(mapping));
    for (const d of taskDefinitions) {
      const member = resolve({ $ref: mapping[d.name] });
      expect(member.required).toEqual(['name', 'input']);
      expect(member.properties?.name?.enum).toEqual([d.name]);
      const input = resolve(member.properties?.input);
      expect(Object.keys(input.properties ?? {}).sort()).toEqual(Object.keys(d.input.shape).sort());
      expect(Object.keys(member.properties ?? {})).toEqual(
        expect.arrayContaining([
          'priority',
          'delay_ms',
          'run_at',
          'max_attempts',
          'timeout_ms',
          'idempotency_key',
          'concurrency_key',
          'singleton_key',
          'debounce',
        ]),
      );
    }
    expect(operation?.responses['201']?.content?.['application/json']?.schema.$ref).toBe(
      '#/components/schemas/TypedTask',
    );
    // 200: an existing task answers (its singleton_key or debounce key held), in the same shape.
    expect(operation?.responses['200']?.content?.['application/json']?.schema.$ref).toBe(
      '#/components/schemas/TypedTask',
    );
  });

  it("types the task record per task type: a oneOf by name, with each type's input and output", () => {
    const record = (path: string, method: string, status: string) =>
      doc.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema;
    for (const [path, method, status] of [
      ['/tasks/{id}', 'get', '200'],
      ['/tasks', 'post', '201'],
      ['/tasks/{id}/cancel', 'post', '200'],
      ['/tasks/{id}/retry', 'post', '200'],
    ] as const) {
      expect(record(path, method, status)?.$ref, `${method} ${path}`).toBe('#/components/schemas/TypedTask');
    }
    // A page of the list carries bounded summaries (previews, not whole payloads): the record is GET /tasks/{id}.
    const list = record('/tasks', 'get', '200') as { properties: { tasks: { items: Schema } } };
    expect(list.properties.tasks.items.$ref).toBe('#/components/schemas/TaskSummary');

    const typed = resolve({ $ref: '#/components/schemas/TypedTask' });
    expect(typed.discriminator?.propertyName).toBe('name');
    const mapping = typed.discriminator?.mapping ?? {};
    expect(Object.keys(mapping)).toEqual([...taskNames]);
    for (const d of taskDefinitions) {
      const member = resolve({ $ref: mapping[d.name] }) as { allOf: Schema[] };
      expect(member.allOf[0]?.$ref).toBe('#/components/schemas/Task');
      const own = member.allOf[1]?.properties ?? {};
      expect(own.name?.enum).toEqual([d.name]);
      expect(own.input?.$ref).toBe(mapping[d.name]?.replace(/Task$/, 'Input'));
      const output = own.output as { oneOf: Schema[] };
      expect(output.oneOf).toEqual([{ $ref: mapping[d.name]?.replace(/Task$/, 'Output') }, { type: 'null' }]);
    }
    expect(resolve({ $ref: '#/components/schemas/SumTwoNumbersOutput' })).toMatchObject({ type: 'number' });
    expect(resolve({ $ref: '#/components/schemas/QueryChatgptOutput' })).toMatchObject({ type: 'string' });
  });
});
