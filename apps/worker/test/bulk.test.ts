/**
 * Bulk cancel and retry by filter (issue 20), on a real stack: two servers and two workers (real
 * processes), AUTH_MODE=required, in the queue mode of the run (Redis, or TEST_MODE=postgres).
 */
import { randomUUID } from 'node:crypto';
import { ApiKeyStore, listenTaskChanges, type TaskChangeListener } from '@tasker/db';
import { type AppProcess, type FakeOpenAI, spawnApp, startFakeOpenAI, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness } from './harness.ts';

const TENANT = 'bulk-a';
const OTHER = 'bulk-b';
const MANY = 10_000;

let harness: Harness;
let fake: FakeOpenAI;
let listener: TaskChangeListener | undefined;
const servers: AppProcess[] = [];
const workers: AppProcess[] = [];
const keys = {} as Record<'tenant' | 'other', string>;
/** Every status PostgreSQL announced, per task id. */
const announced = new Map<string, string[]>();

/** While closed, the fake OpenAI answers nothing: the tasks it holds stay RUNNING, and none completes. */
let gate: { closed: boolean; open: () => void; wait: Promise<void> } = {
  closed: false,
  open: () => {},
  wait: Promise.resolve(),
};
function closeGate(): void {
  let open = () => {};
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  gate = { closed: true, open, wait };
}

beforeAll(async () => {
  // Each prompt takes 100 ms while the gate is open.
  fake = await startFakeOpenAI({ responseDelayMs: 100, hold: () => gate.wait });
  harness = await Harness.start({
    AUTH_MODE: 'required',
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: fake.baseURL,
    WORKER_CONCURRENCY: '10',
    // A killed worker's jobs stall, and go to the other worker, within about 2 s.
    WORKER_LOCK_MS: '2000',
    // Small chunks and a short lease: many chunks, and a dead runner's operation taken over quickly.
    BULK_CHUNK_SIZE: '500',
    BULK_LEASE_MS: '2000',
    BULK_POLL_MS: '100',
  });
  listener = await listenTaskChanges(
    harness.db.direct, // PostgreSQL itself: a pooler's connections hear no notification
    (change) => {
      const id = change.truncated ? change.id : change.row.id;
      const status = change.truncated ? 'truncated' : change.row.status;
      announced.set(id, [...(announced.get(id) ?? []), status]);
    },
    () => {},
  );
  const store = new ApiKeyStore(harness.db.db);
  const scopes = ['tasks:write', 'tasks:read'] as const;
  keys.tenant = (await store.create({ tenantId: TENANT, name: 'bulk', scopes: [...scopes] })).key;
  keys.other = (await store.create({ tenantId: OTHER, name: 'bulk', scopes: [...scopes] })).key;
  servers.push(await spawnApp('server', harness.env.vars), await spawnApp('server', harness.env.vars));
}, 60_000);

afterAll(async () => {
  await Promise.all([...workers.splice(0), ...servers.splice(0)].map((p) => p.stop('SIGKILL')));
  await listener?.close().catch(() => {});
  await harness?.close();
  await fake?.close();
}, 60_000);

const url = (i: number) => {
  const server = servers[i % servers.length];
  if (!server?.url) throw new Error('no server');
  return server.url;
};

async function call(
  method: 'GET' | 'POST',
  path: string,
  { key = keys.tenant, body, server = 0 }: { key?: string; body?: unknown; server?: number } = {},
) {
  const res = await fetch(`${url(server)}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Inserts `count` PENDING tasks of a tenant (as submissions leave them: waiting for their turn). */
async function insertPending(tenant: string, name: string, count: number, input: object): Promise<void> {
  await harness.db.sql`
    insert into tasks (id, owner_id, name, input, max_attempts, concurrency_key)
    select gen_random_uuid(), ${tenant}, ${name}, ${JSON.stringify(input)}::jsonb, 1, ${tenant}
    from generate_series(1, ${count})`;
}

/** Inserts `count` FAILED tasks of a tenant: sums that a retry can complete. */
async function insertFailed(tenant: string, count: number): Promise<void> {
  await harness.db.sql`
    insert into tasks (id, owner_id, name, input, status, error, attempts, max_attempts, concurrency_key, finished_at)
    select gen_random_uuid(), ${tenant}, 'sum_two_numbers', jsonb_build_object('a', n, 'b', 1), 'FAILED',
      '{"message":"boom","name":"Error","code":"HANDLER_ERROR"}'::jsonb, 1, 1, ${tenant}, now()
    from generate_series(1, ${count}) n`;
}

async function statusCounts(where: string): Promise<Record<string, number>> {
  const rows = await harness.db.sql.unsafe<{ status: string; n: number }[]>(
    `select status, count(*)::int as n from tasks where ${where} group by status`,
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function waitOperation(id: string, server = 1, timeoutMs = 120_000): Promise<Record<string, unknown>> {
  return waitFor(
    async () => {
      const { status, body } = await call('GET', `/operations/${id}`, { server });
      expect(status).toBe(200);
      return body.status === 'running' ? undefined : body;
    },
    { timeoutMs, intervalMs: 200, what: `operation ${id} to end` },
  );
}

describe('bulk actions, two servers and two workers', () => {
  it('refuses an empty or malformed filter with a 400 naming it, and stores nothing', async () => {
    for (const body of [{}, { filter: {} }, { filter: { status: [] } }, { dry_run: true, filter: {} }]) {
      const res = await call('POST', '/tasks/cancel', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(res.body.issues)).toMatch(/filter/);
    }
    const empty = await call('POST', '/tasks/retry', { body: { filter: {} } });
    expect(empty.body.error).toMatch(/give at least one filter/);
    const bad = await call('POST', '/tasks/cancel', { body: { filter: { status: ['NOPE'] } } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.issues)).toContain('filter.status');
    const json = await call('POST', '/tasks/cancel', { body: { filter: { input_contains: '{' } } });
    expect(json.status).toBe(400);
    expect(JSON.stringify(json.body)).toContain('input_contains');
    const unknown = await call('POST', '/tasks/cancel', { body: { filter: { colour: 'red' } } });
    expect(unknown.status).toBe(400);
    const [row] = await harness.db.sql<{ n: number }[]>`select count(*)::int as n from bulk_operations`;
    expect(row?.n).toBe(0);
    expect((await call('GET', `/operations/${randomUUID()}`)).status).toBe(404);
  });

  it(`cancels ${MANY} tasks: each ends CANCELLED or had finished, counted exactly, nothing else touched; a dead runner's operation goes on`, async () => {
    await insertPending(TENANT, 'query_chatgpt', MANY, { prompt: 'bulk' });
    // Outside the filter: another tenant's tasks of the same type, and this tenant's of another input.
    await insertPending(OTHER, 'query_chatgpt', 300, { prompt: 'bulk' });
    await insertPending(TENANT, 'query_chatgpt', 200, { prompt: 'keep' });
    const vars = { ...harness.env.vars };
    workers.push(await spawnApp('worker', vars), await spawnApp('worker', vars));
    // Some tasks run (and finish) before the cancel: it must leave those alone. Then the gate
    // closes: the tasks running stay RUNNING (held), and no more complete.
    const inFilter = `owner_id = '${TENANT}' and input @> '{"prompt":"bulk"}'`;
    await waitFor(async () => ((await statusCounts(inFilter)).COMPLETED ?? 0) >= 50, {
      timeoutMs: 30_000,
      what: 'some tasks completed',
    });
    closeGate();
    // Every slot of the two workers held, and nothing completing any more (two reads alike).
    let last = '';
    const before = await waitFor(
      async () => {
        const counts = await statusCounts(inFilter);
        const all = await statusCounts('true');
        const now = JSON.stringify(counts);
        const stable = now === last && (all.RUNNING ?? 0) === 20;
        last = now;
        return stable ? counts : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: 'every slot held, nothing completing' },
    );
    const completedBefore = before.COMPLETED ?? 0;
    const filter = { name: ['query_chatgpt'], input_contains: JSON.stringify({ prompt: 'bulk' }) };

    const dry = await call('POST', '/tasks/cancel', { body: { filter, dry_run: true } });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, action: 'cancel' });
    expect(dry.body.matched).toBe(MANY - completedBefore);
    const [none] = await harness.db.sql<{ n: number }[]>`select count(*)::int as n from bulk_operations`;
    expect(none?.n).toBe(0); // a dry run records nothing

    const started = await call('POST', '/tasks/cancel', { body: { filter } });
    expect(started.status).toBe(202);
    const id = String(started.body.id);
    expect(started.body).toMatchObject({ action: 'cancel', status: 'running', done: 0 });
    expect(started.body.matched).toBe(MANY - completedBefore);
    // Another tenant does not see it.
    expect((await call('GET', `/operations/${id}`, { key: keys.other, server: 1 })).status).toBe(404);

    // Kill the worker that runs it, mid-way: the other takes it over once its lease runs out.
    const runner = await waitFor(
      async () => {
        const [op] = await harness.db.sql<{ runner: string | null; done: number }[]>`
          select runner, done from bulk_operations where id = ${id}`;
        return op?.runner && op.done > 0 ? op.runner : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: 'the operation to start' },
    );
    const victim = workers.find((w) => runner.endsWith(`:${w.child.pid}`));
    expect(victim).toBeDefined();
    await victim?.stop('SIGKILL');

    const ended = await waitOperation(id);
    // Counted exactly: every PENDING task cancelled, every RUNNING one asked to stop, none twice.
    expect(ended).toMatchObject({
      status: 'done',
      error: null,
      matched: MANY - completedBefore,
      done: MANY - completedBefore,
    });
    const [op] = await harness.db.sql<
      { runner: string | null }[]
    >`select runner from bulk_operations where id = ${id}`;
    expect(op?.runner).toBeNull();

    // The RUNNING ones end CANCELLED once their worker aborts them; the dead worker's, once their
    // jobs stall and the other worker's claim finds the request.
    gate.open();
    await waitFor(
      async () => {
        const counts = await statusCounts(inFilter);
        return (counts.PENDING ?? 0) + (counts.RUNNING ?? 0) === 0 ? counts : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: 'every matching task finished' },
    );
    const cancelled = await harness.db.sql<{ id: string }[]>`
      select id from tasks where owner_id = ${TENANT} and input @> '{"prompt":"bulk"}' and status = 'CANCELLED'`;
    const [requested] = await harness.db.sql<{ n: number }[]>`
      select count(*)::int as n from tasks where owner_id = ${TENANT} and input @> '{"prompt":"bulk"}'
        and cancel_requested_at is not null`;
    expect(requested?.n).toBe(ended.done);
    expect(await statusCounts(inFilter)).toEqual({ CANCELLED: ended.done, COMPLETED: completedBefore });
    expect(cancelled.length).toBe(ended.done);
    // Nothing outside the filter was touched.
    for (const where of [
      `owner_id = '${OTHER}'`,
      `owner_id = '${TENANT}' and input @> '{"prompt":"keep"}'`,
    ]) {
      const [outside] = await harness.db.sql.unsafe<{ n: number }[]>(
        `select count(*)::int as n from tasks where ${where} and (status = 'CANCELLED' or cancel_requested_at is not null)`,
      );
      expect(outside?.n, where).toBe(0);
    }
    // Watchers saw each change: every cancelled task was announced CANCELLED.
    await waitFor(
      () => cancelled.every((t) => announced.get(t.id)?.some((s) => s === 'CANCELLED' || s === 'truncated')),
      { timeoutMs: 10_000, what: 'every CANCELLED announced' },
    );
  }, 240_000);

  it('retries the failed tasks that match, and only those, though the server that took the request died', async () => {
    await insertFailed(TENANT, 300);
    await insertFailed(OTHER, 50);
    // Two workers again (the cancel killed one).
    const alive = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
    workers.splice(0, workers.length, ...alive);
    while (workers.length < 2) workers.push(await spawnApp('worker', harness.env.vars));
    const filter = { status: ['FAILED'], name: ['sum_two_numbers'] };
    const dry = await call('POST', '/tasks/retry', { body: { filter, dry_run: true }, server: 1 });
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, matched: 300 } });
    const started = await call('POST', '/tasks/retry', { body: { filter }, server: 1 });
    expect(started.status).toBe(202);
    expect(started.body.matched).toBe(300);
    // The server that took the request dies at once: the operation is the workers', it goes on.
    await servers[1]?.stop('SIGKILL');
    const ended = await waitOperation(String(started.body.id), 0);
    expect(ended).toMatchObject({ status: 'done', matched: 300, done: 300 });
    // Retried, they run again and complete: a + b.
    await waitFor(
      async () =>
        ((await statusCounts(`owner_id = '${TENANT}' and name = 'sum_two_numbers'`)).COMPLETED ?? 0) === 300,
      { timeoutMs: 60_000, what: 'the retried tasks completed' },
    );
    const [wrong] = await harness.db.sql<{ n: number }[]>`
      select count(*)::int as n from tasks where owner_id = ${TENANT} and name = 'sum_two_numbers'
        and output <> to_jsonb((input->>'a')::numeric + (input->>'b')::numeric)`;
    expect(wrong?.n).toBe(0);
    expect(await statusCounts(`owner_id = '${OTHER}' and name = 'sum_two_numbers'`)).toEqual({ FAILED: 50 });
  }, 120_000);
});
