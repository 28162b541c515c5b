/**
 * The SDK's limits: `tenants.limits.get/set/clear`, `tenants.list`, `types.limits.get/set/clear`
 * (camelCase in, refusals named as written), and `TaskerQueueFullError` when a run finds its
 * tenant's queue full. Against a real server (AUTH_MODE=required); no worker: tasks stay PENDING.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type AppProcess, createTestEnv, spawnApp, type TestEnv } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
  type LimitsInput,
  type TaskerClient,
  TaskerError,
  TaskerQueueFullError,
  TaskerValidationError,
} from '../src/index.ts';

let env: TestEnv;
let server: AppProcess;
const root = new URL('../../../', import.meta.url).pathname;
let operator: TaskerClient;
let acme: TaskerClient;

beforeAll(async () => {
  env = createTestEnv({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', TENANT_MAX_RUNNING: '8' });
  server = await spawnApp('server', env.vars);
  // Keys as the README makes them: `tasker keys create` against the database.
  const make = async (tenant: string, scopes: string) =>
    (
      await promisify(execFile)(
        'pnpm',
        ['tasker', 'keys', 'create', '--tenant', tenant, '--name', 'sdk', '--scopes', scopes],
        { cwd: root, env: { ...process.env, DATABASE_URL: env.databaseUrl, AUTH_MODE: 'required' } },
      )
    ).stdout.trim();
  operator = createTaskerClient({ url: server.url ?? '', apiKey: await make('ops', 'operator') });
  acme = createTaskerClient({
    url: server.url ?? '',
    apiKey: await make('acme', 'admin,tasks:write,tasks:read'),
  });
  await make('globex', 'tasks:read');
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await env?.cleanup();
});

describe('limits from the SDK', () => {
  it("sets, reads and clears a tenant's limits; a run beyond max_queued rejects with TaskerQueueFullError", async () => {
    const set = await acme.tenants.limits.set('acme', { maxQueued: 1, startsPerMinute: 120 });
    expect(set.effective).toEqual({ maxRunning: 8, maxQueued: 1, startsPerMinute: 120 });
    expect(set.defaults.maxRunning).toBe(8);
    await acme.run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: 3_600_000 });
    const refused = await acme
      .run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: 3_600_000 })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TaskerQueueFullError);
    expect(refused).toBeInstanceOf(TaskerError);
    expect(refused).toMatchObject({ code: 'QUEUE_FULL', message: expect.stringMatching(/max_queued/) });
    const read = await acme.tenants.limits.get('acme');
    expect(read).toMatchObject({ tenant: 'acme', queued: 1, running: 0, stored: { maxQueued: 1 } });
    const cleared = await acme.tenants.limits.clear('acme');
    expect(cleared.stored).toEqual({ maxRunning: null, maxQueued: null, startsPerMinute: null });
    await expect(acme.run('sum_two_numbers', { a: 1, b: 2 }, { delayMs: 3_600_000 })).resolves.toBeDefined();
  });

  it('names a refused limit as written, refuses an unknown one locally, and another tenant is FORBIDDEN', async () => {
    const negative = await acme.tenants.limits.set('acme', { maxQueued: -1 }).catch((e: unknown) => e);
    expect(negative).toBeInstanceOf(TaskerValidationError);
    expect((negative as TaskerValidationError).issues.map((i) => i.path)).toEqual(['maxQueued']);
    const snake = await acme.tenants.limits
      .set('acme', { max_queued: 1 } as unknown as LimitsInput)
      .catch((e: unknown) => e);
    expect(snake).toBeInstanceOf(TaskerValidationError);
    expect((snake as TaskerValidationError).issues[0]?.path).toBe('max_queued');
    const other = await acme.tenants.limits.get('globex').catch((e: unknown) => e);
    expect(other).toMatchObject({ code: 'FORBIDDEN' });
    await expect(acme.tenants.list()).rejects.toMatchObject({ code: 'FORBIDDEN' });
  });

  it('an operator: any tenant, the list of tenants a page at a time, and a task type’s limits', async () => {
    await operator.tenants.limits.set('globex', { maxRunning: 2 });
    const first = await operator.tenants.list({ limit: 2 });
    expect(first.tenants.map((t) => t.tenant)).toEqual(['acme', 'globex']);
    expect(first.nextCursor).toBe('globex');
    const rest = await operator.tenants.list({ cursor: first.nextCursor ?? undefined });
    expect(rest).toMatchObject({ tenants: [{ tenant: 'ops' }], nextCursor: null });
    const typed = await operator.types.limits.set('sum_two_numbers', { maxRunningPerKey: 3, maxQueued: 50 });
    expect(typed.effective).toMatchObject({ maxRunningPerKey: 3, maxQueued: 50, maxRunning: null });
    expect((await operator.types.limits.get('sum_two_numbers')).stored.maxRunningPerKey).toBe(3);
    expect((await operator.types.limits.clear('sum_two_numbers')).stored.maxRunningPerKey).toBeNull();
  });
});
