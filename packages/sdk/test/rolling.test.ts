/**
 * A rolling deploy under load (issue 24): two servers and two workers over one database (and one
 * Redis in that mode), behind a load balancer (@tasker/testing's startBalancer: readiness checks, and a request that
 * got no answer at all sent again to the other server, as HAProxy's `retry-on conn-failure
 * empty-response` does). While tasks are submitted at a steady rate and every long task is watched
 * three ways (the SDK's `updates()`, the dashboard's tRPC subscription, a plain EventSource on
 * `GET /tasks/{id}/events`), each process in turn gets SIGTERM, exits and starts again on its port.
 *
 * Then: every submission was answered 2xx; every accepted task is COMPLETED, once (as many tasks
 * as submissions, one counted attempt each: runs handed back at shutdown are not counted); no task
 * ran twice at once (each query_chatgpt run is one request to the fake model, from its start to its
 * end or abort); every watcher saw its task's final state.
 */
import {
  type AppProcess,
  type Balancer,
  createTestEnv,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startBalancer,
  startFakeOpenAI,
  type TestEnv,
  testMode,
  waitFor,
} from '@tasker/testing';
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import { afterAll, expect, it } from 'vitest';
import { createTaskerClient, type TaskSummary } from '../src/index.ts';
import type { AppRouter } from '../src/types.ts';

/** One submission every this many ms (20 a second), whatever the answers' delay. */
const SUBMIT_EVERY_MS = 50;
/** Every this many submissions, a query_chatgpt (about 1.5 s of streamed reply), watched; else a sum. */
const LONG_EVERY = 6;
const REPLY = 'one two three four five six seven eight nine ten';
const CHUNK_DELAY_MS = 150;
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let env: TestEnv | undefined;
let fake: FakeOpenAI | undefined;
let balancer: Balancer | undefined;
const processes = new Map<string, AppProcess>();

afterAll(async () => {
  await Promise.all([...processes.values()].map((p) => p.stop('SIGKILL')));
  await balancer?.close();
  await env?.cleanup();
  await fake?.close();
});

/** What one watcher saw of one task: its statuses in order, or how it failed. */
interface Watched {
  kind: 'sdk' | 'trpc' | 'eventsource';
  id: string;
  statuses: string[];
  error?: string;
}

it(`restarts 2 servers and 2 workers one by one under load: no failed submission, no lost or doubled task, no missed final event (${testMode} mode)`, async () => {
  const started = Date.now();
  const phases: string[] = [];
  const mark = (what: string) => phases.push(`${what} ${((Date.now() - started) / 1000).toFixed(1)}s`);
  fake = await startFakeOpenAI({ reply: () => REPLY, chunkDelayMs: CHUNK_DELAY_MS });
  const [port1, port2] = [await freePort(), await freePort()];
  env = createTestEnv({
    AUTH_MODE: 'disabled',
    OPENAI_API_KEY: 'sk-test',
    OPENAI_BASE_URL: fake.baseURL,
    // A worker hands its still running tasks back 300 ms after SIGTERM: long tasks are handed back.
    SHUTDOWN_TIMEOUT_MS: '300',
    WORKER_CONCURRENCY: '20',
  });
  const vars = {
    // server1 stops accepting at once (the balancer meets refused connections and sends those
    // requests to server2); server2 drains for 500 ms first (/readyz 503: taken out before it stops).
    server1: { ...env.vars, PORT: String(port1), SHUTDOWN_DELAY_MS: '0' },
    server2: { ...env.vars, PORT: String(port2), SHUTDOWN_DELAY_MS: '500' },
    worker1: env.vars,
    worker2: env.vars,
  };
  const kindOf = (name: string) => (name.startsWith('server') ? 'server' : 'worker');
  // All at once: one of them migrates the database, the others wait for it (an advisory lock).
  await Promise.all(
    (['server1', 'server2', 'worker1', 'worker2'] as const).map(async (name) => {
      processes.set(name, await spawnApp(kindOf(name), vars[name], { timeoutMs: 60_000 }));
    }),
  );
  mark('started');
  balancer = await startBalancer([`http://127.0.0.1:${port1}`, `http://127.0.0.1:${port2}`]);
  const url = balancer.url;

  // Three kinds of watchers, each of every long task, all through the balancer.
  const tasker = createTaskerClient({ url });
  const dashboard = createTRPCClient<AppRouter>({
    links: [
      // As apps/dashboard/src/api.ts: no retry link, EventSource's own reconnection only.
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({ url: `${url}/trpc`, EventSource }),
        false: httpBatchLink({ url: `${url}/trpc` }),
      }),
    ],
  });
  const watched: Watched[] = [];
  const watching: Promise<void>[] = [];
  const watch = (id: string) => {
    const sdk: Watched = { kind: 'sdk', id, statuses: [] };
    const trpc: Watched = { kind: 'trpc', id, statuses: [] };
    const plain: Watched = { kind: 'eventsource', id, statuses: [] };
    watched.push(sdk, trpc, plain);
    watching.push(
      (async () => {
        try {
          for await (const update of tasker.task(id).updates()) sdk.statuses.push(update.status);
        } catch (error) {
          sdk.error = String(error);
        }
      })(),
      new Promise<void>((resolve) => {
        const subscription = dashboard.onTaskActivity.subscribe(
          { id },
          {
            onData: ({ data }) => {
              if (data.type === 'state') trpc.statuses.push(data.task.status);
            },
            onError: (error) => {
              trpc.error = String(error);
              subscription.unsubscribe();
              resolve();
            },
            onComplete: () => resolve(),
          },
        );
      }),
      new Promise<void>((resolve) => {
        const source = new EventSource(`${url}/tasks/${id}/events`);
        source.onmessage = (message) => {
          const { status } = JSON.parse(message.data) as { status: string };
          plain.statuses.push(status);
          if (TERMINAL.has(status)) {
            source.close();
            resolve();
          }
        };
        // A dropped stream is reconnected by EventSource itself; CLOSED means it gave up.
        source.onerror = (event) => {
          if (source.readyState !== EventSource.CLOSED) return;
          plain.error = `EventSource gave up: ${event.message ?? event.code ?? 'closed'}`;
          resolve();
        };
      }),
    );
  };

  // The load: one submission every SUBMIT_EVERY_MS, not waiting for the answers.
  const accepted: { id: string; long: boolean; prompt?: string }[] = [];
  const refused: string[] = [];
  let loading = true;
  const submitOne = async (n: number) => {
    const long = n % LONG_EVERY === 0;
    const prompt = `rolling ${n}`;
    const body = long
      ? { name: 'query_chatgpt', input: { prompt } }
      : { name: 'sum_two_numbers', input: { a: n, b: 1 } };
    try {
      const res = await fetch(`${url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status !== 201) {
        refused.push(`${res.status} ${text}`);
        return;
      }
      const { id } = JSON.parse(text) as { id: string };
      accepted.push({ id, long, ...(long ? { prompt } : {}) });
      if (long) watch(id);
    } catch (error) {
      refused.push(String(error));
    }
  };
  const load = (async () => {
    const sent: Promise<void>[] = [];
    for (let n = 0; loading; n++) {
      sent.push(submitOne(n));
      await sleep(SUBMIT_EVERY_MS);
    }
    await Promise.all(sent);
  })();

  // The rolling deploy: each process in turn stops (SIGTERM, and it exits 0) and starts again.
  await sleep(1000);
  for (const name of ['server1', 'server2', 'worker1', 'worker2'] as const) {
    const before = processes.get(name);
    expect(await before?.stop('SIGTERM'), `${name}'s exit code`).toBe(0);
    mark(`${name} stopped`);
    processes.set(name, await spawnApp(kindOf(name), vars[name], { timeoutMs: 60_000 }));
    mark(`${name} started`);
    await sleep(500);
  }
  loading = false;
  await load;
  mark('load over');

  expect(refused, 'submissions not answered 2xx').toEqual([]);
  expect(balancer.failed).toBe(0);

  // Every accepted task ends COMPLETED; as many tasks as submissions accepted, each counted once.
  const all = async () => {
    const tasks: TaskSummary[] = [];
    let cursor: string | undefined;
    do {
      const page = await tasker.list({ limit: 500, ...(cursor ? { cursor } : {}) });
      tasks.push(...page.tasks);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return tasks;
  };
  const tasks = await waitFor(
    async () => {
      const now = await all();
      return now.every((t) => TERMINAL.has(t.status)) ? now : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500, what: 'every task to finish' },
  );
  mark('tasks finished');
  expect(tasks.length).toBe(accepted.length);
  const byId = new Map(tasks.map((t) => [t.id, t]));
  for (const { id } of accepted) {
    expect(byId.get(id), `task ${id}`).toMatchObject({ status: 'COMPLETED', attempts: 1 });
  }

  // No task ran twice at once: a long task's runs (its requests to the model) never overlap, and
  // the last one finished (not aborted). An earlier run was handed back at its worker's shutdown:
  // its request was aborted, or had just been answered when the handler was aborted.
  let handedBack = 0;
  for (const { prompt, id } of accepted.filter((a) => a.long)) {
    const runs = fake.requests
      .filter((r) => r.body.messages?.at(-1)?.content === prompt)
      .sort((a, b) => a.at - b.at);
    expect(runs.length, `runs of ${id}`).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < runs.length; i++) {
      const [before, after] = [runs[i - 1], runs[i]];
      expect(after?.at, `run ${i + 1} of ${id} started after run ${i} ended`).toBeGreaterThanOrEqual(
        before?.endedAt ?? Number.POSITIVE_INFINITY,
      );
    }
    expect(runs.at(-1)?.aborted, `last run of ${id}`).toBe(false);
    handedBack += runs.length - 1;
  }
  // The worker restarts did hand running tasks back (SHUTDOWN_TIMEOUT_MS 300, runs of 1.5 s).
  expect(handedBack).toBeGreaterThan(0);

  // Every watcher of every long task saw its final state, without an error.
  await waitFor(() => watched.every((w) => w.error || TERMINAL.has(w.statuses.at(-1) ?? '')), {
    timeoutMs: 30_000,
    intervalMs: 200,
    what: 'every watcher to see its final state',
  });
  const missed = watched.filter((w) => w.error || w.statuses.at(-1) !== 'COMPLETED');
  expect(missed, 'watchers that did not see COMPLETED').toEqual([]);
  expect(watched.length).toBe(3 * accepted.filter((a) => a.long).length);
  // Streams were cut by the restarts and resumed where they were (Last-Event-ID).
  expect(balancer.resumed).toBeGreaterThan(0);
  await Promise.all(watching);

  console.info(
    `rolling restart (${testMode}): ${accepted.length} tasks, ${watched.length} watchers, ` +
      `${handedBack} runs handed back, ${balancer.resumed} streams resumed, ` +
      `balancer retries ${JSON.stringify(Object.fromEntries(balancer.retried))}; ${phases.join(', ')}`,
  );
});
