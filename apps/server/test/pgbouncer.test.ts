// Issue 24: Tasker behind PgBouncer in transaction mode, as a user runs it (Debian's pgbouncer,
// `pool_mode = transaction`, `ignore_startup_parameters = extra_float_digits,options`). The server
// and the worker are real processes (the built dist), their DATABASE_URL on the pooler and their
// DATABASE_DIRECT_URL on PostgreSQL, in the current TEST_MODE. `pnpm test:pgbouncer` runs the
// whole engine and server suites through a pooler too; this file checks what only a pooler shows.
import {
  type AppProcess,
  createTestEnv,
  type FakeOpenAI,
  findPgBouncer,
  freePort,
  type PgBouncer,
  spawnApp,
  startFakeOpenAI,
  startPgBouncer,
  type TestEnv,
  testMode,
  waitFor,
} from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// CI installs pgbouncer: there a missing binary fails this file instead of skipping it.
const skip = findPgBouncer() === undefined && !process.env.CI;
if (skip) {
  console.warn(
    'pgbouncer.test.ts skipped: pgbouncer is not installed (apt-get install -y pgbouncer, or PGBOUNCER=/path); CI runs it',
  );
}

interface Task {
  id: string;
  status: string;
  output: unknown;
  progress: { partial?: string } | null;
}

const CANCEL_ME = 'cancel me';

describe.skipIf(skip)(`behind PgBouncer in transaction mode (${testMode} mode)`, () => {
  let pooler: PgBouncer;
  let fake: FakeOpenAI;
  let env: TestEnv;
  let database: string;
  let vars: Record<string, string>;
  let server: AppProcess;
  let worker: AppProcess;
  let direct: postgres.Sql;

  beforeAll(async () => {
    pooler = await startPgBouncer();
    // Word by word; the task to cancel runs long (200 words, 24 s).
    fake = await startFakeOpenAI({
      reply: (prompt) => (prompt === CANCEL_ME ? 'word '.repeat(200) : 'one two three four five six'),
      chunkDelayMs: 120,
    });
    env = createTestEnv({ OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: fake.baseURL });
    database = decodeURIComponent(new URL(env.databaseUrl).pathname.slice(1));
    vars = { ...env.vars, DATABASE_URL: pooler.urlFor(database), DATABASE_DIRECT_URL: env.databaseUrl };
    server = await spawnApp('server', vars);
    worker = await spawnApp('worker', vars);
    direct = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
  });
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
    await direct?.end({ timeout: 5 });
    await env?.cleanup();
    await pooler?.stop();
    await fake?.close();
  });

  const url = () => server.url ?? '';
  const getTask = async (id: string) => (await (await fetch(`${url()}/tasks/${id}`)).json()) as Task;
  const submit = async (name: string, input: unknown) => {
    const res = await fetch(`${url()}/run-task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ task_name: name, task_parameters: input }),
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { task_uuid: string }).task_uuid;
  };
  const finished = (id: string, status: string) =>
    waitFor(
      async () => {
        const task = await getTask(id);
        return task.status === status ? task : undefined;
      },
      { what: `task ${id} ${status}` },
    );

  it('the server and the worker start through it: their pools are its clients, their LISTENs and locks are not', async () => {
    expect(server.output()).toContain('PostgreSQL through the pooler at');
    const clients = (await pooler.show('clients')).filter((c) => c.database === database);
    const names = new Set(clients.map((c) => c.application_name));
    expect(names).toContain('tasker-server');
    expect(names).toContain('tasker-worker');
    // Every LISTEN of the database (the server's live feed; in PostgreSQL-only mode the worker's
    // cancel signals and BullMQ's) and the worker's lock session are direct connections: none of
    // them is one of the pooler's server connections.
    const viaPooler = new Set((await pooler.show('servers')).map((s) => Number(s.local_port)));
    const sessions = await waitFor(
      async () => {
        const rows = await direct<{ port: number; app: string; query: string }[]>`
          select client_port as port, application_name as app, query from pg_stat_activity
          where datname = ${database} and (query ilike 'listen %' or application_name = 'tasker-locks')`;
        return rows.some((r) => r.app === 'tasker-locks') && rows.some((r) => /^listen/i.test(r.query))
          ? rows
          : undefined;
      },
      { what: 'the listening connections and the lock session' },
    );
    for (const session of sessions) expect(viaPooler.has(session.port)).toBe(false);
  });

  it('the failure of issue 24 is a line saying what to set: DATABASE_URL on the pooler, DATABASE_DIRECT_URL unset', async () => {
    const error = await spawnApp('server', {
      ...vars,
      DATABASE_DIRECT_URL: '',
      STARTUP_TIMEOUT_MS: '2000',
    }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(
      /\nPostgreSQL at postgres:\/\/\S+ \(DATABASE_URL\) refused the connection's startup parameter plan_cache_mode \("unsupported startup parameter: plan_cache_mode"\): .*Set DATABASE_DIRECT_URL to PostgreSQL itself/,
    );
    expect(error?.message).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a task runs to completion', async () => {
    const id = await submit('sum_two_numbers', { a: 20, b: 22 });
    expect((await finished(id, 'COMPLETED')).output).toBe(42);
  });

  it('a live stream (SSE) gets its events: PENDING, RUNNING, the partial outputs, COMPLETED', async () => {
    const id = await submit('query_chatgpt', { prompt: 'stream me' });
    const res = await fetch(`${url()}/tasks/${id}/events`, { signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(200);
    const events = (await res.text())
      .split('\n\n')
      .map((block) => /^data: (.*)$/m.exec(block)?.[1])
      .filter((data): data is string => data !== undefined)
      .map((data) => JSON.parse(data) as Task);
    const statuses = events.map((e) => e.status);
    expect(statuses.at(-1)).toBe('COMPLETED');
    expect(statuses).toContain('RUNNING');
    const partials = new Set(events.map((e) => e.progress?.partial).filter(Boolean));
    expect(partials.size).toBeGreaterThanOrEqual(2); // heard as the reply grew, not read at the end
    expect(events.at(-1)?.output).toBe('one two three four five six');
  });

  it('cancel: a RUNNING task ends CANCELLED, its model call aborted', async () => {
    const id = await submit('query_chatgpt', { prompt: CANCEL_ME });
    await finished(id, 'RUNNING');
    await waitFor(() => fake.requests.some((r) => r.body.messages?.[0]?.content === CANCEL_ME));
    const res = await fetch(`${url()}/tasks/${id}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    await finished(id, 'CANCELLED');
    const request = fake.requests.find((r) => r.body.messages?.[0]?.content === CANCEL_ME);
    await waitFor(() => request?.aborted === true, { what: 'the model call to be aborted' });
  });

  it('PgBouncer dropped no answer (a pipelined query would leave its connection waiting forever)', () => {
    // ('E' alone would be a server connection told its database was dropped: not yet, here.)
    expect(pooler.output()).not.toMatch(/got packet '.' from server when not linked/);
  });

  it('DATABASE_DIRECT_URL that does not answer: one line naming it, after STARTUP_TIMEOUT_MS', async () => {
    const port = await freePort();
    const error = await spawnApp('worker', {
      ...vars,
      DATABASE_DIRECT_URL: `postgres://root@127.0.0.1:${port}/${database}`,
      STARTUP_TIMEOUT_MS: '500',
    }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain(
      `cannot reach PostgreSQL at postgres://root@127.0.0.1:${port}/${database} (DATABASE_DIRECT_URL): connect ECONNREFUSED 127.0.0.1:${port}; gave up after 500 ms (STARTUP_TIMEOUT_MS)`,
    );
    expect(error?.message).not.toMatch(/\n\s+at /);
  });
});
