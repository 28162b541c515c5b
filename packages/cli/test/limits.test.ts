/**
 * `tasker tenants`, `tasker tenants limits TENANT` and `tasker types limits NAME`, as built: read,
 * set, clear, bad values (exit 2), another tenant's (exit 4), and a run refused QUEUE_FULL (exit 3).
 * Against a real server with API keys required; no worker (tasks stay PENDING).
 */
import { ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { type AppProcess, createTestEnv, freePort, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let db: DbClient;
const keys = { operator: '', admin: '' };

/** The CLI against the server, with `key`, without colours. */
const tasker = (args: string[], key: string) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: key, NO_COLOR: '1' });

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', TENANT_STARTS_PER_MINUTE: '600' });
  server = await spawnApp('server', { ...env.vars, LOG_LEVEL: 'info' });
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  keys.operator = (await store.create({ tenantId: 'ops', name: 'ops', scopes: ['operator'] })).key;
  keys.admin = (
    await store.create({ tenantId: 'acme', name: 'acme', scopes: ['admin', 'tasks:write', 'tasks:read'] })
  ).key;
  await store.create({ tenantId: 'globex', name: 'globex', scopes: ['tasks:read'] });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.close();
  await env?.cleanup();
});

describe('tasker tenants limits', () => {
  it('reads a tenant’s limits and counts, sets some, gives one back to the default, clears them', async () => {
    let run = await tasker(['tenants', 'limits', 'acme'], keys.admin);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^tenant acme {2}\(the defaults\)$/m);
    expect(run.stdout).toMatch(/^starts per minute +- +600 +600 *$/m);
    expect(run.stdout).toMatch(/^max queued +- +- +none +0 queued$/m);

    run = await tasker(['tenants', 'limits', 'acme', '--max-running', '3', '--max-queued', '2'], keys.admin);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^max running +3 +- +3 +0 running$/m);
    expect(run.stdout).toMatch(/^tenant acme {2}\(set \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)$/m);
    run = await tasker(['tenants', 'limits', 'acme', '--max-running', 'default', '--json'], keys.admin);
    expect(run.code, run.stderr).toBe(0);
    const view = JSON.parse(run.stdout);
    expect(view.stored).toEqual({ maxRunning: null, maxQueued: 2, startsPerMinute: null });
    expect(view.effective).toEqual({ maxRunning: null, maxQueued: 2, startsPerMinute: 600 });

    // Its queue holds 2: the third run is refused, exit 3, one line saying why.
    for (const expected of [0, 0, 3]) {
      const submitted = await tasker(
        ['run', 'sum_two_numbers', '--param', 'a=1', '--param', 'b=2', '--delay', '1h'],
        keys.admin,
      );
      expect(submitted.code, submitted.stderr).toBe(expected);
      if (expected === 3) {
        expect(submitted.stderr).toMatch(
          /^tasker: Queue full: tenant "acme" already has 2 queued .*QUEUE_FULL\)\n$/,
        );
      }
    }
    run = await tasker(['tenants', 'limits', 'acme'], keys.admin);
    expect(run.stdout).toMatch(/^max queued +2 +- +2 +2 queued$/m);

    run = await tasker(['tenants', 'limits', 'acme', '--clear', '--json'], keys.admin);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ stored: { maxQueued: null }, updatedAt: null });
  });

  it('bad values exit 2 before asking the server; another tenant’s limits exit 4', async () => {
    for (const args of [
      ['--max-queued', '-1'],
      ['--max-running', '1.5'],
      ['--starts-per-minute', '1000001'],
      ['--max-queued', '3', '--clear'],
      ['--llm-tokens-per-day', '-5'],
      ['--llm-cost-per-month-usd', 'ten'],
    ]) {
      const run = await tasker(['tenants', 'limits', 'acme', ...args], keys.admin);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    // Checked before asking: a server that is not there is never reached (that would be exit 3).
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    for (const limit of ['0', '201', '1.5', 'x']) {
      const run = await tasker(['tenants', '--limit', limit, '--url', nowhere], keys.operator);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    const other = await tasker(['tenants', 'limits', 'globex', '--max-queued', '1'], keys.admin);
    expect(other.code).toBe(4);
    expect(other.stderr).toMatch(/own tenant only.*\(403\)/);
  });

  it('an operator: any tenant, the list of tenants, a task type’s limits', async () => {
    let run = await tasker(['tenants', 'limits', 'globex', '--max-running', '5'], keys.operator);
    expect(run.code, run.stderr).toBe(0);
    run = await tasker(['tenants'], keys.operator);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^TENANT +MAX RUNNING +MAX QUEUED +STARTS\/MIN +RUNNING +QUEUED$/m);
    expect(run.stdout).toMatch(/^acme +none +none +600 +0 +2$/m);
    expect(run.stdout).toMatch(/^globex +5 +none +600 +0 +0$/m);
    run = await tasker(['tenants', '--limit', '1', '--json'], keys.operator);
    expect(JSON.parse(run.stdout)).toMatchObject({ tenants: [{ tenant: 'acme' }], nextCursor: 'acme' });

    run = await tasker(['types', 'limits', 'sum_two_numbers', '--max-running-per-key', '2'], keys.operator);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^task type sum_two_numbers/m);
    expect(run.stdout).toMatch(/^max running per key +2 +- +2 *$/m);
    run = await tasker(['types', 'limits', 'sum_two_numbers', '--clear', '--json'], keys.operator);
    expect(JSON.parse(run.stdout).stored.maxRunningPerKey).toBeNull();
    run = await tasker(['types', 'limits', 'no_such_type'], keys.operator);
    expect(run.code).toBe(2);
    // The task types' limits are an operator's.
    expect((await tasker(['types', 'limits', 'sum_two_numbers'], keys.admin)).code).toBe(4);
    // `tasker types` itself still lists the types.
    expect((await tasker(['types'], keys.admin)).stdout).toMatch(/^sum_two_numbers /m);
  });

  it('LLM budgets: an operator sets them (none removes one), a tenant admin reads them and may not change them', async () => {
    let run = await tasker(
      ['tenants', 'limits', 'acme', '--llm-tokens-per-day', '5000', '--llm-cost-per-month-usd', '12.5'],
      keys.operator,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^BUDGET +SET +USED$/m);
    expect(run.stdout).toMatch(/^llm tokens per day +5000 +0 today$/m);
    expect(run.stdout).toMatch(/^llm cost per month +\$12\.5 +\$0 this month$/m);
    run = await tasker(['tenants', 'limits', 'acme', '--llm-tokens-per-day', '9'], keys.admin);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/set by an operator key.*\(403\)/);
    // The admin's clear gives the limits back to their defaults; the budgets stay.
    run = await tasker(['tenants', 'limits', 'acme', '--clear', '--json'], keys.admin);
    expect(JSON.parse(run.stdout).budgets).toMatchObject({ llmTokensPerDay: 5000, llmCostPerMonthUsd: 12.5 });
    run = await tasker(
      ['tenants', 'limits', 'acme', '--llm-tokens-per-day', 'none', '--json'],
      keys.operator,
    );
    expect(JSON.parse(run.stdout).budgets).toMatchObject({ llmTokensPerDay: null, llmCostPerMonthUsd: 12.5 });
  });
});
