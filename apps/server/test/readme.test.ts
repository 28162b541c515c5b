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

async function shell(command: string, on = stack, env: Record<string, string> = {}): Promise<unknown> {
  expect(command).toBeTruthy();
  const { stdout } = await run('bash', ['-c', command.replaceAll('http://localhost:5000', on.url)], {
    env: { ...process.env, ...env },
  });
  return JSON.parse(stdout);
}

const root = new URL('../../../', import.meta.url).pathname;
const bashLines = [...readme.matchAll(/```bash\n([\s\S]*?)```/g)].flatMap((block) =>
  (block[1] ?? '').split('\n'),
);

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
    for (const command of curls.filter((c) => c.includes('/run-task') && !c.includes('Authorization'))) {
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

describe('the README limits examples, run as written', () => {
  it("sets, reads, lists and clears the default tenant's limits, and sets a task type's", async () => {
    const section = readme.slice(readme.indexOf('### Sharing the service: limits'));
    const lines = curls.filter((c) => section.includes(c) && /\/(tenants|task-types)\b/.test(c));
    expect(lines).toHaveLength(5);
    const [set, get, list, type, clear] = lines;
    expect(await shell(set ?? '')).toMatchObject({
      tenant: 'default',
      effective: { maxRunning: 10, maxQueued: 1000, startsPerMinute: null },
    });
    expect(await shell(get ?? '')).toMatchObject({ stored: { maxRunning: 10, maxQueued: 1000 } });
    const tenants = (await shell(list ?? '')) as { tenants: { tenant: string }[] };
    expect(tenants.tenants.map((t) => t.tenant)).toContain('default');
    expect(await shell(type ?? '')).toMatchObject({
      name: 'query_chatgpt',
      effective: { maxRunningPerKey: 2 },
    });
    expect(await shell(clear ?? '')).toMatchObject({
      stored: { maxRunning: null, maxQueued: null, startsPerMinute: null },
      updatedAt: null,
    });
  });
});

describe('the README identity examples, run as written', () => {
  it('makes the first key with `pnpm tasker keys create`, then the curl lines with it work in required mode', async () => {
    const secure = await startStack({ AUTH_MODE: 'required' });
    try {
      const create = bashLines.find((l) => l.startsWith('KEY=$(AUTH_MODE=required pnpm tasker keys create'));
      expect(create).toBeTruthy();
      const { stdout, stderr } = await run('bash', ['-c', `${create}\nprintf %s "$KEY"`], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: secure.env.databaseUrl },
      });
      expect(stdout, stderr).toMatch(/^tsk_[A-Za-z0-9_-]{43}$/);
      const env = { KEY: stdout };
      const keyed = curls.filter((c) => c.includes('Authorization: Bearer $KEY'));
      const submit = keyed.find((c) => c.includes('/run-task'));
      const output = keyed.find((c) => c.includes('/get-task-output'));
      const events = keyed.find((c) => c.includes('/events'));
      // Without the key: 401.
      const refused = (await shell(
        submit?.replace('-H "Authorization: Bearer $KEY" ', '') ?? '',
        secure,
        env,
      )) as {
        status: number;
      };
      expect(refused.status).toBe(401);
      const { task_uuid } = (await shell(submit ?? '', secure, env)) as { task_uuid: string };
      const body = await waitFor(async () => {
        const answer = (await shell(output?.replace('<task_uuid>', task_uuid) ?? '', secure, env)) as {
          task_output: { status: string };
        };
        return answer.task_output.status === 'PENDING' ? undefined : answer;
      });
      expect(body).toEqual({ task_output: { status: 'COMPLETED', result: 15, error: null } });
      const stream = await run(
        'bash',
        [
          '-c',
          `${events?.replace('<task_uuid>', task_uuid).replaceAll('http://localhost:5000', secure.url)} --max-time 10`,
        ],
        { env: { ...process.env, ...env } },
      );
      expect(stream.stdout).toMatch(/"status":"COMPLETED"/);
    } finally {
      await secure.close();
    }
  });
});
