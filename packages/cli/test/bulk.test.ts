/**
 * `tasker tasks cancel|retry [filters]` and `tasker tasks operation ID`, as built: a count first
 * (nothing touched without --yes), then with --yes the operation followed to its end; no filter,
 * exit 2. Against a real server and worker (AUTH_MODE disabled).
 */
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let worker: AppProcess;

const tasker = (args: string[]) => runTasker(args, { TASKER_URL: server.url ?? '', NO_COLOR: '1' });

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({ BULK_POLL_MS: '100' });
  server = await spawnApp('server', env.vars);
  worker = await spawnApp('worker', env.vars);
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), worker?.stop()]);
  await env?.cleanup();
});

describe('tasker tasks cancel / retry', () => {
  it('counts first, acts with --yes and follows the operation; retry the same way', async () => {
    for (let i = 0; i < 5; i++) {
      const run = await tasker([
        'run',
        'sum_two_numbers',
        '--param',
        `a=${i}`,
        '--param',
        'b=7',
        '--delay',
        '1h',
      ]);
      expect(run.code, run.stderr).toBe(0);
    }
    const other = await tasker([
      'run',
      'sum_two_numbers',
      '--param',
      'a=1',
      '--param',
      'b=8',
      '--delay',
      '1h',
    ]);
    const filter = ['--status', 'PENDING', '--name', 'sum_two_numbers', '--input-contains', '{"b":7}'];

    // Without --yes: the count only, and how to act.
    let run = await tasker(['tasks', 'cancel', ...filter]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('5 PENDING, RUNNING or WAITING tasks match\n');
    expect(run.stderr).toMatch(/--yes/);
    run = await tasker(['tasks', 'cancel', ...filter, '--dry-run', '--yes', '--json']);
    expect(JSON.parse(run.stdout)).toEqual({ dryRun: true, action: 'cancel', matched: 5 });
    run = await tasker(['list', '--status', 'CANCELLED', '--json']);
    expect(JSON.parse(run.stdout).tasks).toHaveLength(0);

    run = await tasker(['tasks', 'cancel', ...filter, '--yes']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^cancel [0-9a-f-]{36}: 5 of 5 cancelled \(done\)\n$/);
    run = await tasker(['list', '--status', 'CANCELLED', '--json']);
    expect(JSON.parse(run.stdout).tasks).toHaveLength(5);
    run = await tasker(['list', '--status', 'PENDING', '--json']);
    expect(JSON.parse(run.stdout).tasks.map((t: { id: string }) => t.id)).toEqual([
      other.stdout.trim().split(/\s/)[0],
    ]);

    run = await tasker(['tasks', 'retry', '--status', 'CANCELLED', '--yes', '--no-wait', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const started = JSON.parse(run.stdout);
    expect(started).toMatchObject({ action: 'retry', matched: 5 });
    const done = await (async () => {
      for (;;) {
        const op = await tasker(['tasks', 'operation', started.id, '--json']);
        const parsed = JSON.parse(op.stdout);
        if (parsed.status !== 'running') return parsed;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    expect(done).toMatchObject({ status: 'done', done: 5 });
    run = await tasker(['tasks', 'operation', started.id]);
    expect(run.stdout).toBe(`retry ${started.id}: 5 of 5 retried (done)\n`);
    // Some 15 CLI processes one after another: each starts Node and loads the CLI, which takes
    // seconds on a busy 2-core machine (CI's run once spent 60 s here).
  }, 150_000);

  it('refuses no filter and a bad one with exit 2 (a usage error, or the 400 of the server)', async () => {
    for (const args of [
      ['tasks', 'cancel', '--yes'],
      ['tasks', 'retry'],
      ['tasks', 'cancel', '--status', 'DONE'],
      ['tasks', 'cancel', '--created-after', 'yesterday'],
      ['tasks', 'retry', '--input-contains', '{'],
      ['tasks', 'retry', '--metadata-contains', '[1]'],
    ]) {
      const run = await tasker(args);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await tasker(['tasks', 'retry'])).stderr).toMatch(/give at least one filter/);
    const unknown = await tasker(['tasks', 'operation', '00000000-0000-4000-8000-000000000000']);
    expect(unknown.code).toBe(5);
  });
});
