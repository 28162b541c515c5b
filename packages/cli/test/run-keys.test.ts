/**
 * `tasker run --concurrency-key --singleton-key --debounce-key --debounce-ms --ttl`, and the keys in
 * `get` and `list`: the flags' parsing without a server, then the built CLI against a server (no
 * worker: the tasks stay PENDING).
 */
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDuration, parseDurationMs } from '../src/duration.ts';
import { CliError } from '../src/errors.ts';
import { runOptionsOf, taskCommands } from '../src/tasks.ts';
import { assertBuilt, tasker as runTasker } from './run.ts';

describe('the run flags (no server)', () => {
  it('--ttl takes a duration in ms, s, m, h, d or w', () => {
    expect(parseDurationMs('500ms')).toBe(500);
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('2h')).toBe(7_200_000);
    expect(() => parseDurationMs('30')).toThrow(/not a duration/);
    expect(() => parseDurationMs('0s')).toThrow(/longer than 0/);
  });

  it('--delay and keys --expires-in take the same table without ms, in seconds', () => {
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('2w')).toBe(1_209_600);
    expect(() => parseDuration('500ms')).toThrow(/not a duration: use a number and s, m, h, d or w/);
  });

  it('map to the SDK run options; --debounce-key and --debounce-ms go together', () => {
    expect(
      runOptionsOf({
        ttl: 30_000,
        concurrencyKey: 'customer-7',
        singletonKey: 'nightly',
      }),
    ).toMatchObject({
      ttlMs: 30_000,
      concurrencyKey: 'customer-7',
      singletonKey: 'nightly',
      debounce: undefined,
    });
    expect(runOptionsOf({ debounceKey: 'k', debounceMs: 0 }).debounce).toEqual({ key: 'k', delayMs: 0 });
    expect(() => runOptionsOf({ debounceKey: 'k' })).toThrow(CliError);
    expect(() => runOptionsOf({ debounceMs: 5 })).toThrow(/go together/);
  });

  it('lists the flags in run --help, and refuses a bad key or delay as usage', () => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    taskCommands(program);
    const run = program.commands.find((c) => c.name() === 'run');
    const help = run?.helpInformation() ?? '';
    for (const flag of [
      '--ttl <duration>',
      '--concurrency-key <key>',
      '--singleton-key <key>',
      '--debounce-key <key>',
      '--debounce-ms <n>',
    ])
      expect(help).toContain(flag);
    expect(() =>
      program.parse(['node', 'tasker', 'run', 'sum_two_numbers', '--debounce-ms', '90000000'], {
        from: 'node',
      }),
    ).toThrow(/1 day/);
    expect(() =>
      program.parse(['node', 'tasker', 'run', 'sum_two_numbers', '--singleton-key', 'x'.repeat(201)], {
        from: 'node',
      }),
    ).toThrow(/1 to 200 characters/);
  });
});

let env: TestEnv;
let server: AppProcess;

const tasker = (args: string[]) => runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: '' });

describe('tasker run with keys, against a server', () => {
  beforeAll(async () => {
    assertBuilt();
    env = createTestEnv();
    server = await spawnApp('server', env.vars);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await env?.cleanup();
  });

  const sum = ['run', 'sum_two_numbers', '-p', 'a=1', '-p', 'b=2'];

  it('--singleton-key: the second run prints the first task’s id', async () => {
    const key = `nightly-${crypto.randomUUID()}`;
    const first = await tasker([...sum, '--singleton-key', key, '--ttl', '10m']);
    expect(first.code, first.stderr).toBe(0);
    const second = await tasker([...sum, '--singleton-key', key]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    const got = await tasker(['get', first.stdout.trim()]);
    expect(got.stdout).toMatch(/^singleton key\s+nightly-/m);
    expect(got.stdout).toMatch(/^expires\s+\S+ \S+ \(ttl 600000 ms\)$/m);
  });

  it('--debounce-key: runs collapse into one task, with the last parameters', async () => {
    const key = `reindex-${crypto.randomUUID()}`;
    const ids: string[] = [];
    for (const a of ['1', '2']) {
      const run = await tasker([
        'run',
        'sum_two_numbers',
        '-p',
        `a=${a}`,
        '-p',
        'b=0',
        '--debounce-key',
        key,
        '--debounce-ms',
        '60000',
      ]);
      expect(run.code, run.stderr).toBe(0);
      ids.push(run.stdout.trim());
    }
    expect(ids[1]).toBe(ids[0]);
    const got = await tasker(['get', ids[0] ?? '', '--json']);
    expect(JSON.parse(got.stdout)).toMatchObject({ input: { a: 2, b: 0 }, debounceKey: key });
    const alone = await tasker([...sum, '--debounce-key', key]);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/^tasker: --debounce-key and --debounce-ms go together/);
  });

  it('--concurrency-key: get and list show the key (the tenant’s without one)', async () => {
    const keyed = await tasker([...sum, '--concurrency-key', 'customer-7']);
    const plain = await tasker(sum);
    const got = await tasker(['get', keyed.stdout.trim()]);
    expect(got.stdout).toMatch(/^concurrency key\s+customer-7$/m);
    expect((await tasker(['get', plain.stdout.trim()])).stdout).toMatch(/^concurrency key\s+default$/m);
    const listed = await tasker(['list', '--limit', '2']);
    expect(listed.stdout).toMatch(/^ID\s+TYPE\s+STATUS\s+ATTEMPTS\s+KEY\s+CREATED/);
    expect(listed.stdout).toMatch(new RegExp(`^${keyed.stdout.trim()}\\s.*\\scustomer-7\\s`, 'm'));
  });

  it('refuses a key with a control character as the server does: usage, exit 2', async () => {
    const bad = await tasker([...sum, '--concurrency-key', 'a\u0007b']);
    expect(bad.code).toBe(2);
  });
});
