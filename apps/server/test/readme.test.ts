import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { type FakeOpenAI, startFakeOpenAI, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const run = promisify(execFile);
const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
/** Every curl command of the README's bash blocks, as written there. */
const curls = [...readme.matchAll(/```bash\n([\s\S]*?)```/g)]
  .flatMap((block) => (block[1] ?? '').split('\n'))
  .filter((line) => line.startsWith('curl '));

let stack: Stack;
let fake: FakeOpenAI;
beforeAll(async () => {
  fake = await startFakeOpenAI({ reply: () => 'Why did the chicken cross the road?' });
  stack = await startStack({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
});
afterAll(async () => {
  await stack?.close();
  await fake?.close();
});

async function shell(command: string): Promise<unknown> {
  expect(command).toBeTruthy();
  const { stdout } = await run('bash', ['-c', command.replaceAll('http://localhost:5000', stack.url)]);
  return JSON.parse(stdout);
}

describe('the README curl examples, run as written', () => {
  it('has the old service examples', () => {
    expect(curls.length).toBeGreaterThanOrEqual(4);
    expect(curls.some((c) => c.includes('<task_uuid>'))).toBe(true);
  });

  it('each submission answers a task_uuid, and get-task-output reports its result', async () => {
    const expected: Record<string, unknown> = {
      sum_two_numbers: 15,
      find_longest_consecutive_letters: 4,
      query_chatgpt: 'Why did the chicken cross the road?',
    };
    const getOutput = curls.find((c) => c.includes('/get-task-output'));
    const events = curls.find((c) => c.includes('/events'));
    for (const command of curls.filter((c) => c.includes('/run-task'))) {
      const submitted = (await shell(command)) as { task_uuid: string };
      expect(submitted.task_uuid).toMatch(/^[0-9a-f-]{36}$/);
      const name = /"task_name": "(\w+)"/.exec(command)?.[1] ?? '';
      const output = await waitFor(async () => {
        const body = (await shell(getOutput?.replace('<task_uuid>', submitted.task_uuid) ?? '')) as {
          task_output: { status: string };
        };
        return body.task_output.status === 'PENDING' ? undefined : body;
      });
      expect(output).toEqual({ task_output: { status: 'COMPLETED', result: expected[name], error: null } });
      // The event stream of a finished task: its final state, then the stream ends.
      const { stdout } = await run('bash', [
        '-c',
        `${events?.replace('<task_uuid>', submitted.task_uuid).replaceAll('http://localhost:5000', stack.url)} --max-time 10`,
      ]);
      expect(stdout).toMatch(/^id: \d+\ndata: \{.*"status":"COMPLETED"/m);
    }
  });
});
