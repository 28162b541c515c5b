import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskerClient, TaskerError } from '../src/index.ts';
import { type LiveStack, startLiveStack } from './stack.ts';

const run = promisify(execFile);
const root = new URL('../../../', import.meta.url).pathname;
let stack: LiveStack;
let key: string;

beforeAll(async () => {
  stack = await startLiveStack({ AUTH_MODE: 'required' });
  // The first key, as the README makes it.
  const { stdout } = await run(
    'pnpm',
    ['tasker', 'keys', 'create', '--tenant', 'sdk', '--name', 'test', '--scopes', 'tasks:write,tasks:read'],
    { cwd: root, env: { ...process.env, DATABASE_URL: stack.env.databaseUrl, AUTH_MODE: 'required' } },
  );
  key = stdout.trim();
});
afterAll(async () => {
  await stack?.close();
});

describe('an API key (AUTH_MODE=required)', () => {
  it('is sent on every call, streams included', async () => {
    const tasker = createTaskerClient({ url: stack.url, apiKey: key });
    const task = await tasker.run('query_chatgpt', { prompt: 'hello' });
    const statuses: string[] = [];
    for await (const update of task.updates()) statuses.push(update.status);
    expect(statuses.at(-1)).toBe('COMPLETED');
    expect(await task.result()).toBe('one two three four five six seven eight');
    expect((await tasker.list()).tasks.map((t) => t.id)).toContain(task.id);
  });

  it('splits calls made at once into batches the server takes (its TRPC_MAX_BATCH, 20)', async () => {
    const tasker = createTaskerClient({ url: stack.url, apiKey: key, retry: false });
    const task = await tasker.run('sum_two_numbers', { a: 1, b: 2 });
    const reads = await Promise.all(Array.from({ length: 45 }, () => tasker.get(task.id)));
    expect(reads.map((t) => t.id)).toEqual(Array(45).fill(task.id));
  });

  it('without it, calls fail with UNAUTHORIZED', async () => {
    const anonymous = createTaskerClient({ url: stack.url, retry: false });
    const error = await anonymous.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TaskerError);
    expect(error).toMatchObject({ code: 'UNAUTHORIZED' });
  });
});
