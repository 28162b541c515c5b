/**
 * `tasker run --batch file.jsonl` (all or nothing, one line per task: its id and created or the key
 * that matched), `--tag` and `--metadata` on `run` and `list`, and tags and metadata in `get`: the
 * file's parsing without a server, then the built CLI against a server (no worker).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchLines } from '../src/tasks.ts';
import { assertBuilt, tasker as runTasker } from './run.ts';

describe('a batch file (no server)', () => {
  it('takes one JSON object a line, blank lines skipped, and names a bad line', () => {
    expect(batchLines('{"name":"a","input":{}}\n\n{"name":"b","input":{}}\n', 'f')).toHaveLength(2);
    expect(() => batchLines('{"name":"a"}\n{nope\n', 'f.jsonl')).toThrow(/^f\.jsonl, line 2: not JSON/);
    expect(() => batchLines('[1]\n', 'f')).toThrow(/line 1: not a JSON object/);
    expect(() => batchLines('\n', 'f')).toThrow(/1 to 1000 tasks/);
    expect(() => batchLines('{}\n'.repeat(1001), 'f')).toThrow(/it holds 1001/);
  });
});

let env: TestEnv;
let server: AppProcess;
let dir: string;

const tasker = (args: string[]) => runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: '' });
const file = async (name: string, lines: unknown[]) => {
  const path = join(dir, name);
  await writeFile(path, `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
  return path;
};

describe('tasker run --batch, --tag, --metadata, against a server', () => {
  beforeAll(async () => {
    assertBuilt();
    env = createTestEnv();
    server = await spawnApp('server', env.vars);
    dir = await mkdtemp(join(tmpdir(), 'tasker-batch-'));
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await env?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('submits a file of tasks: one line per task, in order, created or matched', async () => {
    const tag = `batch-${crypto.randomUUID()}`;
    const key = `idem-${crypto.randomUUID()}`;
    const path = await file('ok.jsonl', [
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, tags: [tag], delay_ms: 60_000 },
      { name: 'sum_two_numbers', input: { a: 3, b: 4 }, idempotency_key: key, delay_ms: 60_000 },
      { name: 'sum_two_numbers', input: { a: 5, b: 6 }, idempotency_key: key },
    ]);
    const run = await tasker(['run', '--batch', path]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines.map((line) => line.split(/\s+/)[1])).toEqual(['created', 'created', 'idempotency']);
    expect(lines[2]?.split(/\s+/)[0]).toBe(lines[1]?.split(/\s+/)[0]);
    const listed = await tasker(['list', '--tag', tag, '--json']);
    expect(JSON.parse(listed.stdout).tasks.map((t: { id: string }) => t.id)).toEqual([
      lines[0]?.split(/\s+/)[0],
    ]);
  });

  it('stores nothing when a line is bad, and says which (exit 2)', async () => {
    const tag = `refused-${crypto.randomUUID()}`;
    const path = await file('bad.jsonl', [
      { name: 'sum_two_numbers', input: { a: 1, b: 2 }, tags: [tag] },
      { name: 'sum_two_numbers', input: { a: 'x', b: 2 }, tags: [tag] },
    ]);
    const run = await tasker(['run', '--batch', path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('tasks.1.input.a');
    expect(JSON.parse((await tasker(['list', '--tag', tag, '--json'])).stdout).tasks).toEqual([]);
    const mixed = await tasker(['run', 'sum_two_numbers', '--batch', path]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/not with <type>/);
  });

  it('--tag and --metadata on run; shown by get, found by list', async () => {
    const tag = `cli-${crypto.randomUUID()}`;
    const run = await tasker([
      'run',
      'sum_two_numbers',
      '-p',
      'a=1',
      '-p',
      'b=2',
      '--tag',
      tag,
      '--tag',
      'nightly',
      '--metadata',
      '{"team":"billing"}',
      '--delay',
      '60s',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    const got = await tasker(['get', id]);
    expect(got.stdout).toMatch(new RegExp(`^tags\\s+${tag}, nightly$`, 'm'));
    expect(got.stdout).toMatch(/^metadata\s+\{"team":"billing"\}$/m);
    const listed = await tasker(['list', '--tag', tag, '--metadata', '{"team":"billing"}']);
    expect(listed.stdout).toMatch(/^ID\s+TYPE\s+STATUS\s+ATTEMPTS\s+KEY\s+CREATED\s+FINISHED\s+TAGS\s+INPUT/);
    expect(listed.stdout).toContain(id);
    const none = await tasker(['list', '--tag', tag, '--metadata', '{"team":"other"}']);
    expect(none.stdout).toBe('');
    const bad = await tasker(['run', 'sum_two_numbers', '-p', 'a=1', '-p', 'b=2', '--metadata', '[1]']);
    expect(bad.code).toBe(2);
  });
});
