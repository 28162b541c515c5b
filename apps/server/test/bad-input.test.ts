import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awaitOutput, runTask, type Stack, startStack } from './helpers.ts';

let stack: Stack;
/** Tasks accepted before the bad requests: every one must still complete, right. */
const accepted: { id: string; a: number }[] = [];
beforeAll(async () => {
  stack = await startStack();
  for (let a = 0; a < 10; a++)
    accepted.push({ id: await runTask(stack.url, 'sum_two_numbers', { a, b: 1 }), a });
});
afterAll(async () => {
  await stack?.close();
});

interface Case {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  status: number;
  /** Words the error message must contain. */
  says: RegExp;
}

const json = { 'content-type': 'application/json' };
const run = (body: unknown) => JSON.stringify(body);
const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

const cases: Case[] = [
  {
    name: 'missing task_name',
    path: '/run-task',
    headers: json,
    body: run({ task_parameters: {} }),
    status: 400,
    says: /task_name/,
  },
  {
    name: 'unknown task_name',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'rm_rf', task_parameters: {} }),
    status: 400,
    says: /task_name.*sum_two_numbers/,
  },
  {
    name: 'task_name of the wrong type',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 7, task_parameters: {} }),
    status: 400,
    says: /task_name/,
  },
  {
    name: 'missing task_parameters',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'sum_two_numbers' }),
    status: 400,
    says: /task_parameters/,
  },
  {
    name: 'missing parameter',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'sum_two_numbers', task_parameters: { a: 1 } }),
    status: 400,
    says: /task_parameters\.b.*number/,
  },
  {
    name: 'wrongly typed parameter',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'sum_two_numbers', task_parameters: { a: '5', b: 10 } }),
    status: 400,
    says: /task_parameters\.a: .*expected number, received string/,
  },
  {
    name: 'parameters of another task',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'find_longest_consecutive_letters', task_parameters: { a: 1, b: 2 } }),
    status: 400,
    says: /task_parameters\.string/,
  },
  {
    name: 'task_parameters not an object',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'sum_two_numbers', task_parameters: [1, 2] }),
    status: 400,
    says: /task_parameters/,
  },
  { name: 'non-JSON', path: '/run-task', headers: json, body: '{"task_name": ', status: 400, says: /JSON/ },
  { name: 'empty body', path: '/run-task', headers: json, body: '', status: 400, says: /empty/i },
  {
    name: 'no content type',
    path: '/run-task',
    body: Buffer.from(run({ task_name: 'sum_two_numbers' })),
    status: 415,
    says: /Content-Type must be application\/json/i,
  },
  {
    name: 'wrong content type',
    path: '/run-task',
    headers: { 'content-type': 'application/xml' },
    body: '<task/>',
    status: 415,
    says: /Content-Type must be application\/json \(got "application\/xml"\)/,
  },
  {
    name: 'text/plain JSON',
    path: '/run-task',
    headers: { 'content-type': 'text/plain' },
    body: '{}',
    status: 415,
    says: /content-type/i,
  },
  {
    name: 'a JSON array',
    path: '/run-task',
    headers: json,
    body: '[1,2,3]',
    status: 400,
    says: /JSON object/,
  },
  {
    name: 'a JSON string',
    path: '/run-task',
    headers: json,
    body: '"run"',
    status: 400,
    says: /JSON object/,
  },
  { name: 'JSON null', path: '/run-task', headers: json, body: 'null', status: 400, says: /JSON object/ },
  {
    name: 'a 10 MB body',
    path: '/run-task',
    headers: json,
    body: run({
      task_name: 'find_longest_consecutive_letters',
      task_parameters: { string: 'a'.repeat(10 * 1024 * 1024) },
    }),
    status: 413,
    says: /too large/i,
  },
  {
    name: 'deeply nested JSON',
    path: '/run-task',
    headers: json,
    body: `{"task_name":"sum_two_numbers","task_parameters":{"a":${deep(100_000)}}}`,
    status: 400,
    says: /nests deeper/,
  },
  {
    name: 'prototype poisoning',
    path: '/run-task',
    headers: json,
    body: '{"task_name":"sum_two_numbers","task_parameters":{"a":1,"b":2},"__proto__":{"admin":true}}',
    status: 400,
    says: /./,
  },
  {
    name: 'an unknown top-level field',
    path: '/run-task',
    headers: json,
    body: run({ task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 }, priorty: 5 }),
    status: 400,
    says: /priorty/,
  },
  { name: 'missing task_uuid', method: 'GET', path: '/get-task-output', status: 400, says: /task_uuid/ },
  {
    name: 'empty task_uuid',
    method: 'GET',
    path: '/get-task-output?task_uuid=',
    status: 400,
    says: /task_uuid/,
  },
  {
    name: 'malformed task_uuid',
    method: 'GET',
    path: '/get-task-output?task_uuid=1%27%20OR%201=1',
    status: 400,
    says: /task_uuid.*UUID/,
  },
  {
    name: 'repeated task_uuid',
    method: 'GET',
    path: `/get-task-output?task_uuid=${crypto.randomUUID()}&task_uuid=${crypto.randomUUID()}`,
    status: 400,
    says: /task_uuid/,
  },
  {
    name: 'unknown task_uuid',
    method: 'GET',
    path: `/get-task-output?task_uuid=${crypto.randomUUID()}`,
    status: 404,
    says: /^Task not found$/,
  },
  {
    name: 'malformed id in /tasks/{id}',
    method: 'GET',
    path: '/tasks/not-a-uuid',
    status: 400,
    says: /id.*UUID/,
  },
  { name: 'GET /run-task', method: 'GET', path: '/run-task', status: 405, says: /POST/ },
  {
    name: 'PUT /run-task',
    method: 'PUT',
    path: '/run-task',
    headers: json,
    body: '{}',
    status: 405,
    says: /POST/,
  },
  { name: 'DELETE /get-task-output', method: 'DELETE', path: '/get-task-output', status: 405, says: /GET/ },
  {
    name: 'POST /get-task-output',
    method: 'POST',
    path: '/get-task-output',
    headers: json,
    body: '{}',
    status: 405,
    says: /GET/,
  },
  { name: 'an unknown route', method: 'GET', path: '/run-tasks', status: 404, says: /./ },
];

describe('bad input gets a 4xx in one JSON error shape, never a 5xx', () => {
  it.each(cases)('$name → $status', async (c) => {
    const res = await fetch(`${stack.url}${c.path}`, {
      method: c.method ?? 'POST',
      headers: c.headers,
      body: c.body,
    });
    const text = await res.text();
    expect(res.status, text).toBe(c.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = JSON.parse(text);
    expect(Object.keys(body).sort()).toEqual(expect.arrayContaining(['code', 'error', 'status']));
    expect(body.status).toBe(c.status);
    expect(typeof body.code).toBe('string');
    expect(body.error).toMatch(c.says);
    expect(text).not.toMatch(/\bat \S+:\d+:\d+/); // no stack trace
    if (body.issues) {
      for (const issue of body.issues)
        expect(issue).toEqual(
          expect.objectContaining({ path: expect.any(String), message: expect.any(String) }),
        );
    }
  });

  it('names each wrong field in issues', async () => {
    const res = await fetch(`${stack.url}/run-task`, {
      method: 'POST',
      headers: json,
      body: run({ task_name: 'sum_two_numbers', task_parameters: { a: 'x', c: 1 } }),
    });
    const body = (await res.json()) as { issues: unknown[] };
    expect(body.issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'task_parameters.a', expected: 'number' }),
        expect.objectContaining({ path: 'task_parameters.b', expected: 'number' }),
        expect.objectContaining({ path: 'task_parameters', message: expect.stringContaining('"c"') }),
      ]),
    );
  });

  it('lost nothing: no row was written for a refused request, every accepted task completed right, and it keeps serving', async () => {
    const sql = postgres(stack.env.databaseUrl, { max: 1 });
    try {
      const rows = await sql<{ id: string }[]>`select id from tasks`;
      expect(rows.map((r) => r.id).sort()).toEqual(accepted.map((t) => t.id).sort());
    } finally {
      await sql.end();
    }
    for (const { id, a } of accepted) {
      expect(await awaitOutput(stack.url, id)).toEqual({ status: 'COMPLETED', result: a + 1, error: null });
    }
    const output = await awaitOutput(stack.url, await runTask(stack.url, 'sum_two_numbers', { a: 1, b: 1 }));
    expect(output.result).toBe(2);
  });
});
