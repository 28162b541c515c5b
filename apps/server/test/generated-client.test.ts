// A REST user's client, generated from /openapi.json by tools nobody here wrote (openapi-typescript +
// openapi-fetch), must be typed per task type: what the document says is what such a client checks.
// The generated types and small consumers are type-checked with TypeScript 5 (openapi-typescript's
// own); each "must not compile" consumer must fail with the error it is about.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import openapiTS, { astToString } from 'openapi-typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/openapi.ts';

const run = promisify(execFile);
const serverRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tsc = path.join(serverRoot, 'node_modules/typescript5/bin/tsc');

let dir: string;

const header = `import createClient from 'openapi-fetch';
import type { paths } from './schema.js';
const client = createClient<paths>({ baseUrl: 'http://localhost:5000' });
`;

/** Type-checks one consumer beside the generated schema; the compiler's output, or '' when it compiles. */
async function check(name: string, body: string): Promise<string> {
  await writeFile(path.join(dir, `${name}.ts`), `${header}\nexport async function main() {\n${body}\n}\n`);
  await writeFile(
    path.join(dir, `tsconfig.${name}.json`),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        skipLibCheck: true,
        types: [],
      },
      files: [`${name}.ts`, 'schema.d.ts'],
    }),
  );
  try {
    await run(process.execPath, [tsc, '-p', `tsconfig.${name}.json`], { cwd: dir });
    return '';
  } catch (error) {
    return (error as { stdout: string }).stdout;
  }
}

beforeAll(async () => {
  // Inside apps/server, so that the consumers resolve openapi-fetch from its node_modules.
  const cache = path.join(serverRoot, 'node_modules/.cache');
  await mkdir(cache, { recursive: true });
  dir = await mkdtemp(path.join(cache, 'generated-client-'));
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  const document = JSON.parse(JSON.stringify(openApiDocument()));
  await writeFile(path.join(dir, 'schema.d.ts'), astToString(await openapiTS(document)));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a client generated from /openapi.json with openapi-typescript + openapi-fetch', () => {
  it('compiles a consumer that creates each task type and reads a sum as a number', async () => {
    const output = await check(
      'good',
      `
  const sum = await client.POST('/tasks', { body: { name: 'sum_two_numbers', input: { a: 5, b: 10 } } });
  if (sum.data && sum.data.name === 'sum_two_numbers') {
    const total: number | null = sum.data.output;
    const a: number = sum.data.input.a;
    void total; void a;
  }
  await client.POST('/tasks', {
    body: { name: 'find_longest_consecutive_letters', input: { string: 'aaab' }, priority: 10 },
  });
  await client.POST('/tasks', { body: { name: 'query_chatgpt', input: { prompt: 'a joke' } } });
  const got = await client.GET('/tasks/{id}', { params: { path: { id: 'x' } } });
  if (got.data?.name === 'find_longest_consecutive_letters') {
    const longest: number | null = got.data.output;
    void longest;
  }
  if (got.error) {
    const message: string = got.error.error;
    void message;
  }
  await client.POST('/run-task', { body: { task_name: 'sum_two_numbers', task_parameters: { a: 5, b: 10 } } });`,
    );
    expect(output).toBe('');
  });

  it.each([
    [
      'a wrong task name',
      `await client.POST('/tasks', { body: { name: 'sum_two_number', input: { a: 5, b: 10 } } });`,
      /sum_two_number/,
    ],
    [
      'a wrong parameter type',
      `await client.POST('/tasks', { body: { name: 'sum_two_numbers', input: { a: '5', b: 10 } } });`,
      /Type 'string' is not assignable to type 'number'/,
    ],
    [
      "another type's parameters",
      `await client.POST('/tasks', { body: { name: 'sum_two_numbers', input: { prompt: 'a joke' } } });`,
      /prompt/,
    ],
    [
      'a missing parameter',
      `await client.POST('/tasks', { body: { name: 'sum_two_numbers', input: { a: 5 } } });`,
      /Property 'b' is missing/,
    ],
    [
      'a sum read as a string',
      `const sum = await client.POST('/tasks', { body: { name: 'sum_two_numbers', input: { a: 5, b: 10 } } });
  if (sum.data?.name === 'sum_two_numbers') {
    const text: string = sum.data.output ?? '';
    void text;
  }`,
      /Type 'number' is not assignable to type 'string'/,
    ],
  ])('does not compile %s', async (name, body, expected) => {
    const output = await check(`bad-${name.replace(/\W+/g, '-')}`, body);
    expect(output).toMatch(/error TS\d+/);
    expect(output).toMatch(expected);
  });
});
