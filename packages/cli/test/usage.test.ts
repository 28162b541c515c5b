/**
 * `tasker usage`, as built: a tenant's model usage per day (the table, its total line, --json), by
 * task type and model, every tenant's with an operator key, another tenant's refused (exit 4), and
 * dates the server refuses (exit 2). Against a real server with API keys required, the ledger of
 * calls (task_llm_calls) written directly; no worker.
 */
import { randomUUID } from 'node:crypto';
import { ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, tasker as runTasker } from './run.ts';

let env: TestEnv;
let server: AppProcess;
let db: DbClient;
const keys = { operator: '', reader: '' };

const tasker = (args: string[], key: string) =>
  runTasker(args, { TASKER_URL: server.url ?? '', TASKER_API_KEY: key, NO_COLOR: '1' });

async function call(
  tenant: string,
  task: string,
  name: string,
  model: string,
  at: string,
  tokens: [number, number],
  cost: number,
) {
  await db.sql`insert into task_llm_calls (tenant_id, task_id, task_name, attempt, base_url, model, prompt_tokens, completion_tokens, cost_usd, created_at)
    values (${tenant}, ${task}, ${name}, 1, 'http://fake/v1', ${model}, ${tokens[0]}, ${tokens[1]}, ${cost}, ${at})`;
}

beforeAll(async () => {
  assertBuilt();
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0' });
  server = await spawnApp('server', { ...env.vars, LOG_LEVEL: 'info' });
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  keys.operator = (
    await store.create({ tenantId: 'ops', name: 'ops', scopes: ['operator', 'tasks:read'] })
  ).key;
  keys.reader = (await store.create({ tenantId: 'acme', name: 'acme', scopes: ['tasks:read'] })).key;
  const [t1, t2, t3] = [randomUUID(), randomUUID(), randomUUID()];
  // acme: two calls of one task on Nov 1 (two models), one on Nov 3; globex: one on Nov 1.
  await call('acme', t1, 'query_chatgpt', 'gpt-4o-mini', '2026-11-01T10:00:00Z', [100, 20], 0.5);
  await call('acme', t1, 'query_chatgpt', 'gpt-4o', '2026-11-01T23:59:59Z', [200, 30], 0.25);
  await call('acme', t2, 'summarize', 'gpt-4o-mini', '2026-11-03T00:00:00Z', [50, 5], 0.125);
  await call('globex', t3, 'query_chatgpt', 'gpt-4o-mini', '2026-11-01T12:00:00Z', [7000, 1000], 2);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.close();
  await env?.cleanup();
});

describe('tasker usage', () => {
  it("prints the tenant's usage per UTC day, every day of the range, and a total line", async () => {
    const run = await tasker(['usage', '--from', '2026-11-01', '--to', '2026-11-03'], keys.reader);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DAY \(UTC\) +PROMPT +COMPLETION +TOKENS +COST +CALLS +TASKS$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^2026-11-01 +300 +50 +350 +\$0\.750000 +2 +1$/),
      expect.stringMatching(/^2026-11-02 +0 +0 +0 +\$0\.000000 +0 +0$/),
      expect.stringMatching(/^2026-11-03 +50 +5 +55 +\$0\.125000 +1 +1$/),
      expect.stringMatching(/^total +350 +55 +405 +\$0\.875000 +3 +2$/),
    ]);
    expect(run.stderr).toBe('tenant acme, 2026-11-01T00:00:00.000Z to 2026-11-04T00:00:00.000Z\n');
  });

  it('--group-by model and task_type; --json is the report', async () => {
    let run = await tasker(
      ['usage', '--from', '2026-11-01', '--to', '2026-11-30', '--group-by', 'model', '--json'],
      keys.reader,
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ tenant: 'acme', group_by: 'model' });
    expect(report.rows).toEqual([
      { key: 'gpt-4o', prompt_tokens: 200, completion_tokens: 30, cost_usd: 0.25, calls: 1, tasks: 1 },
      { key: 'gpt-4o-mini', prompt_tokens: 150, completion_tokens: 25, cost_usd: 0.625, calls: 2, tasks: 2 },
    ]);
    run = await tasker(
      ['usage', '--from', '2026-11-01', '--to', '2026-11-30', '--group-by', 'task_type'],
      keys.reader,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^query_chatgpt +300 +50 +350 +\$0\.750000 +2 +1$/m);
    expect(run.stdout).toMatch(/^summarize +50 +5 +55 +\$0\.125000 +1 +1$/m);
  });

  it("an operator key reads every tenant's (--tenant '*'); another tenant's is exit 4 for others", async () => {
    let run = await tasker(
      ['usage', '--from', '2026-11-01', '--to', '2026-11-01', '--group-by', 'tenant', '--tenant', '*'],
      keys.operator,
    );
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^acme +300 +50 +350 +\$0\.750000 +2 +1$/m);
    expect(run.stdout).toMatch(/^globex +7000 +1000 +8000 +\$2\.00 +1 +1$/m);
    expect(run.stderr).toMatch(/^every tenant, /);
    run = await tasker(['usage', '--tenant', 'globex'], keys.reader);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/^tasker: .*operator key/);
  });

  it('dates the server refuses, and an unknown group, exit 2 with one line', async () => {
    for (const args of [
      ['--from', '2026-02-31'],
      ['--from', '2026-12-02', '--to', '2026-12-01'],
      ['--from', '2024-01-01', '--to', '2026-01-01'],
      ['--group-by', 'week'],
    ]) {
      const run = await tasker(['usage', ...args], keys.reader);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
