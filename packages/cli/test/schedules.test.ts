/**
 * `tasker schedules create|list|get|update|pause|resume|delete`, as built: idempotent creates by key, the
 * tables and --json, a refused cron (exit 2, one line naming it), a key without tasks:write (exit
 * 4), an unknown id (exit 5). Against a real server with API keys required; no worker.
 */
import { ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let db: DbClient;
const keys = { writer: '', reader: '' };

const tasker = (args: string[], key = keys.writer) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: key, NO_COLOR: '1' });

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' });
  server = await spawnApp('server', env.vars);
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  keys.writer = (
    await store.create({ tenantId: 'acme', name: 'w', scopes: ['tasks:write', 'tasks:read'] })
  ).key;
  keys.reader = (await store.create({ tenantId: 'acme', name: 'r', scopes: ['tasks:read'] })).key;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.close();
  await env?.cleanup();
});

describe('tasker schedules', () => {
  it('creates by key (twice: one schedule), lists, gets, pauses, resumes, deletes', async () => {
    const args = [
      'schedules',
      'create',
      'sum_two_numbers',
      '--param',
      'a=1',
      '--param',
      'b=2',
      '--cron',
      '0 2 * * *',
      '--timezone',
      'Europe/Paris',
      '--key',
      'nightly',
      '--catch-up',
      'all',
      '--json',
    ];
    let run = await tasker(args);
    expect(run.code, run.stderr).toBe(0);
    const made = JSON.parse(run.stdout);
    expect(made).toMatchObject({
      key: 'nightly',
      input: { a: 1, b: 2 },
      catchUp: 'all',
      timezone: 'Europe/Paris',
    });
    run = await tasker(args);
    expect(JSON.parse(run.stdout).id).toBe(made.id);

    run = await tasker(['schedules', 'list'], keys.reader);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^ID +KEY +TASK +CRON +TIMEZONE +NEXT FIRE +PAUSED$/m);
    expect(run.stdout).toContain(`${made.id}  nightly  sum_two_numbers  0 2 * * *  Europe/Paris`);

    run = await tasker(['schedules', 'get', made.id], keys.reader);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^cron +0 2 \* \* \* {2}\(Europe\/Paris\)$/m);
    expect(run.stdout.match(/^ {2}\d{4}-\d\d-\d\d 0[01]:00:00Z$/gm)).toHaveLength(5);
    expect(run.stdout).toContain('none yet');

    run = await tasker([
      'schedules',
      'update',
      made.id,
      '--cron',
      '30 3 * * *',
      '--timezone',
      'America/New_York',
      '--param',
      'a=5',
      '--param',
      'b=6',
      '--catch-up',
      'none',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      id: made.id,
      cron: '30 3 * * *',
      timezone: 'America/New_York',
      input: { a: 5, b: 6 },
      catchUp: 'none',
    });
    // What is not given stays.
    run = await tasker(['schedules', 'update', made.id, '--cron', '0 2 * * *']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^cron +0 2 \* \* \* {2}\(America\/New_York\)$/m);
    expect(run.stdout).toMatch(/^input +\{"a":5,"b":6\}$/m);

    run = await tasker(['schedules', 'pause', made.id]);
    expect(run.stdout).toBe(`${made.id} paused\n`);
    run = await tasker(['schedules', 'resume', made.id, '--json']);
    expect(JSON.parse(run.stdout).paused).toBe(false);
    run = await tasker(['schedules', 'delete', made.id]);
    expect(run.stdout).toBe(`${made.id} deleted\n`);
    run = await tasker(['schedules', 'get', made.id]);
    expect(run.code).toBe(5);
  });

  it('refusals: a bad cron (2), a read-only key (4)', async () => {
    let run = await tasker([
      'schedules',
      'create',
      'sum_two_numbers',
      '--input',
      '{"a":1,"b":2}',
      '--cron',
      '* * *',
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^tasker: .*cron.*5 \(minute hour day month weekday\)/);
    run = await tasker(['schedules', 'create', 'sum_two_numbers', '--cron', '0 * * * *'], keys.reader);
    expect(run.code).toBe(4);
    run = await tasker([
      'schedules',
      'create',
      'sum_two_numbers',
      '--cron',
      '0 * * * *',
      '--catch-up',
      'some',
    ]);
    expect(run.code).toBe(2);
  });
});
