/**
 * The SDK's schedules: `schedules.create/list/get/update/pause/resume/delete`, camelCase in and
 * out, refusals named as written; and a seconds schedule's ticks run to their results. Against a
 * real server and worker.
 */
import { type AppProcess, createTestEnv, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTaskerClient,
  type TaskerClient,
  TaskerNotFoundError,
  TaskerValidationError,
} from '../src/index.ts';

let env: TestEnv;
let server: AppProcess;
let worker: AppProcess;
let tasker: TaskerClient;

beforeAll(async () => {
  env = createTestEnv({ SCHEDULE_INTERVAL_MS: '100' });
  [server, worker] = await Promise.all([spawnApp('server', env.vars), spawnApp('worker', env.vars)]);
  tasker = createTaskerClient({ url: server.url ?? '' });
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), worker?.stop()]);
  await env?.cleanup();
});

describe('schedules from the SDK', () => {
  it('creates (an upsert by key), lists, gets, pauses, resumes, updates and deletes', async () => {
    const made = await tasker.schedules.create({
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      cron: '0 9 * * MON-FRI',
      timezone: 'America/New_York',
      key: 'standup',
      catchUp: 'none',
      ttlMs: 60_000,
    });
    expect(made).toMatchObject({ key: 'standup', catchUp: 'none', ttlMs: 60_000, paused: false });
    const again = await tasker.schedules.create({
      name: 'sum_two_numbers',
      input: { a: 2, b: 2 },
      cron: '0 10 * * MON-FRI',
      timezone: 'America/New_York',
      key: 'standup',
    });
    expect(again.id).toBe(made.id);
    expect(again.cron).toBe('0 10 * * MON-FRI');

    const page = await tasker.schedules.list({ limit: 10 });
    expect(page.schedules.map((s) => s.id)).toContain(made.id);
    expect(page.nextCursor).toBeNull();

    const detail = await tasker.schedules.get(made.id);
    expect(detail.nextFires).toHaveLength(5);
    expect(detail.runs).toEqual([]);

    expect((await tasker.schedules.pause(made.id)).paused).toBe(true);
    expect((await tasker.schedules.resume(made.id)).paused).toBe(false);
    const changed = await tasker.schedules.update(made.id, { catchUp: 'all', cron: '30 9 * * *' });
    expect(changed).toMatchObject({ catchUp: 'all', cron: '30 9 * * *' });

    await tasker.schedules.delete(made.id);
    await expect(tasker.schedules.get(made.id)).rejects.toBeInstanceOf(TaskerNotFoundError);
  });

  it('names refused fields as written (catchUp, not catch_up), and an unknown option', async () => {
    const refused = await tasker.schedules
      // @ts-expect-error: not a policy
      .create({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, cron: '* * * * *', catchUp: 'some' })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TaskerValidationError);
    expect((refused as TaskerValidationError).issues.map((i) => i.path)).toEqual(['catchUp']);
    const badCron = await tasker.schedules
      .create({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, cron: '* * *' })
      .catch((error: unknown) => error);
    expect((badCron as TaskerValidationError).issues[0]?.path).toBe('cron');
    const unknown = await tasker.schedules
      // @ts-expect-error: not an option
      .create({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, cron: '* * * * *', every: 5 })
      .catch((error: unknown) => error);
    expect((unknown as TaskerValidationError).issues[0]?.path).toBe('every');
    // The router's name for an option: refused with the SDK's, as run()'s options are.
    const snake = await tasker.schedules
      // @ts-expect-error: the wire's name
      .update('00000000-0000-4000-8000-000000000000', { catch_up: 'none' })
      .catch((error: unknown) => error);
    expect((snake as TaskerValidationError).issues[0]?.message).toContain('use "catchUp"');
  });

  it("a seconds schedule's ticks become tasks that complete", async () => {
    const made = await tasker.schedules.create({
      name: 'sum_two_numbers',
      input: { a: 2, b: 3 },
      cron: '* * * * * *',
    });
    const detail = await waitFor(
      async () => {
        const d = await tasker.schedules.get(made.id);
        return d.runs.filter((r) => r.status === 'COMPLETED').length >= 2 ? d : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'two completed runs' },
    );
    const run = detail.runs.find((r) => r.status === 'COMPLETED');
    expect(await tasker.get(run?.id ?? '')).toMatchObject({ status: 'COMPLETED', output: 5 });
    await tasker.schedules.pause(made.id);
  });
});
