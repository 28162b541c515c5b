/**
 * The README's CLI section, run as written (`pnpm tasker …` lines, in one shell): a file of its own,
 * so that it runs beside cli.test.ts (two files at a time) instead of after it.
 */
import { readFileSync } from 'node:fs';
import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  spawnApp,
  startFakeOpenAI,
  type TestEnv,
} from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, runProcess } from './run.ts';

let env: TestEnv;
let fake: FakeOpenAI;
let server: AppProcess;
let worker: AppProcess;

beforeAll(async () => {
  assertBuilt();
  fake = await startFakeOpenAI({ chunkDelayMs: 300 });
  env = createTestEnv({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
  server = await spawnApp('server', env.vars);
  worker = await spawnApp('worker', env.vars);
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), worker?.stop()]);
  await fake?.close();
  await env?.cleanup();
});

describe('the README', () => {
  it('runs its CLI examples as written: each exits 0, the bad parameter 2 with the line it shows', async () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## The `tasker` command line'));
    const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const lines = block
      .split('\n')
      .filter((line) => line.startsWith('pnpm tasker') || line.startsWith('ID=$('));
    expect(lines.length).toBeGreaterThanOrEqual(12);
    // One shell, so that $ID carries from line to line; each line's exit code after it.
    const script = lines.map((line) => `${line}\necho "[exit $?]"`).join('\n');
    const root = new URL('../../../', import.meta.url).pathname;
    const run = await runProcess('bash', ['-c', script], {
      cwd: root,
      env: { ...process.env, TASKER_URL: server.url ?? '', TASKER_API_KEY: '' },
    });
    const codes = [...run.stdout.matchAll(/\[exit (\d+)\]/g)].map((m) => Number(m[1]));
    expect(codes, `${run.stdout}\n${run.stderr}`).toEqual([...lines.slice(0, -1).map(() => 0), 2]);
    expect(run.stdout).toMatch(/^15\n\[exit 0\]$/m);
    expect(run.stdout).toContain('"output": 15');
    expect(run.stdout).toContain('echo: Tell me a joke\n');
    const shown = /# (tasker: task_parameters\.b: .*)/.exec(block)?.[1];
    expect(run.stderr).toContain(`${shown}\n`);
  }, 240_000);
});
