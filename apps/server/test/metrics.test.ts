/**
 * Prometheus `/metrics` on the server and on a worker (a real process, its METRICS_PORT), parsed
 * with a Prometheus text-format parser: 100 tasks, 10 of them failing, move the task counters by
 * exactly those numbers, each in the process where it happens; the histograms and the HTTP counter
 * move with them; METRICS_TOKEN guards both endpoints. Then every metric the Grafana dashboard
 * queries is checked against these real scrapes.
 */
import { readFileSync } from 'node:fs';
import {
  type AppProcess,
  type FakeOpenAI,
  freePort,
  spawnApp,
  startFakeOpenAI,
  waitFor,
} from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';
import { countOf, exposedNames, parseMetrics, type Scrape, sampleValue, scrape } from './prometheus.ts';
import { metricsCurls, runReadmeLine } from './readme-metrics.ts';

const TOKEN = 'metrics-token-for-tests';
let stack: Stack;
let worker: AppProcess;
let workerUrl: string;
let fake: FakeOpenAI;

beforeAll(async () => {
  // query_chatgpt against an OpenAI that answers 400: with max_attempts 1, it fails for good.
  fake = await startFakeOpenAI({ failWith: 400 });
  stack = await startStack(
    {
      METRICS_TOKEN: TOKEN,
      OPENAI_API_KEY: 'sk-test',
      OPENAI_BASE_URL: fake.baseURL,
      METRICS_TOP_TENANTS: '2',
    },
    { worker: false },
  );
  const port = await freePort();
  worker = await spawnApp('worker', { ...stack.env.vars, METRICS_TOKEN: TOKEN, METRICS_PORT: String(port) });
  workerUrl = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await worker?.stop();
  await stack?.close();
  await fake?.close();
});

const post = (body: unknown) =>
  fetch(`${stack.url}/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('GET /metrics', () => {
  it.each([
    ['server', () => stack.url],
    ['worker', () => workerUrl],
  ])('on the %s needs METRICS_TOKEN when it is set: 401 in the error shape without it', async (_, url) => {
    const none = await fetch(`${url()}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await none.json()).toEqual({
      error: 'This endpoint needs the metrics token: send Authorization: Bearer <METRICS_TOKEN>',
      code: 'UNAUTHORIZED',
      status: 401,
    });
    const wrong = await fetch(`${url()}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } });
    expect([wrong.status, await wrong.json()]).toEqual([
      401,
      { error: 'Invalid metrics token', code: 'UNAUTHORIZED', status: 401 },
    ]);
    const right = await fetch(`${url()}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    const families = parseMetrics(await right.text());
    // Node's default process metrics, and Tasker's own from the first scrape on.
    for (const name of [
      'process_cpu_seconds_total',
      'nodejs_heap_size_used_bytes',
      'tasker_tasks_created_total',
    ])
      expect(families.families.map((f) => f.name)).toContain(name);
  });

  it("the README's curl line with the token works, and the same line without it is refused", async () => {
    const line = metricsCurls.find((l) => l.includes('Authorization: Bearer s3cret'));
    expect(line).toBeTruthy();
    expect(await runReadmeLine(line ?? '', stack.url, TOKEN)).toMatch(/^# HELP /);
    const refused = await runReadmeLine(line?.replace(' | head', '') ?? '', stack.url, 'not-the-token');
    expect(JSON.parse(refused)).toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  });

  it('counts 100 tasks, 10 of them failing: created on the server, completed and failed on the worker, exactly', async () => {
    const before = { server: await scrape(stack.url, TOKEN), worker: await scrape(workerUrl, TOKEN) };
    const ids: string[] = [];
    for (let i = 0; i < 100; i += 25) {
      const answers = await Promise.all(
        Array.from({ length: 25 }, (_, j) => {
          const n = i + j;
          return n % 10 === 9
            ? post({ name: 'query_chatgpt', input: { prompt: `fail ${n}` }, max_attempts: 1 })
            : post({ name: 'sum_two_numbers', input: { a: n, b: 1 } });
        }),
      );
      for (const res of answers) {
        expect(res.status).toBe(201);
        ids.push(((await res.json()) as { id: string }).id);
      }
    }
    expect(new Set(ids).size).toBe(100);

    const delta = (
      families: { server: Scrape; worker: Scrape },
      where: 'server' | 'worker',
      name: string,
      labels = {},
    ) => sampleValue(families[where], name, labels) - sampleValue(before[where], name, labels);
    // The worker counts each outcome right after its UPDATE commits: wait for its scrape to catch up.
    const after = await waitFor(
      async () => {
        const now = { server: await scrape(stack.url, TOKEN), worker: await scrape(workerUrl, TOKEN) };
        const finished =
          delta(now, 'worker', 'tasker_tasks_completed_total') +
          delta(now, 'worker', 'tasker_tasks_failed_total');
        return finished >= 100 ? now : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: '100 finished tasks in the worker metrics' },
    );
    const sql = postgres(stack.env.databaseUrl, { max: 1 });
    try {
      const rows = await sql<{ status: string; n: number }[]>`
        select status, count(*)::int as n from tasks where id = any(${ids}::uuid[]) group by status`;
      expect(Object.fromEntries(rows.map((r) => [r.status, r.n]))).toEqual({ COMPLETED: 90, FAILED: 10 });
    } finally {
      await sql.end();
    }

    // Created: on the server, by type.
    expect(delta(after, 'server', 'tasker_tasks_created_total')).toBe(100);
    expect(delta(after, 'server', 'tasker_tasks_created_total', { task_type: 'sum_two_numbers' })).toBe(90);
    expect(delta(after, 'server', 'tasker_tasks_created_total', { task_type: 'query_chatgpt' })).toBe(10);
    expect(delta(after, 'worker', 'tasker_tasks_created_total')).toBe(0);
    // Completed and failed: on the worker, once per task.
    expect(delta(after, 'worker', 'tasker_tasks_completed_total', { task_type: 'sum_two_numbers' })).toBe(90);
    expect(delta(after, 'worker', 'tasker_tasks_completed_total')).toBe(90);
    expect(delta(after, 'worker', 'tasker_tasks_failed_total', { task_type: 'query_chatgpt' })).toBe(10);
    expect(delta(after, 'worker', 'tasker_tasks_failed_total')).toBe(10);
    expect(delta(after, 'worker', 'tasker_tasks_cancelled_total')).toBe(0);
    expect(delta(after, 'server', 'tasker_tasks_completed_total')).toBe(0);

    // One run-duration observation per attempt (each task had one), one queue wait per task.
    const countDelta = (name: string, labels = {}) =>
      countOf(after.worker, name, labels) - countOf(before.worker, name, labels);
    expect(countDelta('tasker_task_run_duration_seconds')).toBe(100);
    expect(
      countDelta('tasker_task_run_duration_seconds', { task_type: 'sum_two_numbers', outcome: 'completed' }),
    ).toBe(90);
    expect(
      countDelta('tasker_task_run_duration_seconds', { task_type: 'query_chatgpt', outcome: 'failed' }),
    ).toBe(10);
    expect(countDelta('tasker_task_queue_wait_seconds')).toBe(100);
    expect(countDelta('tasker_task_queue_wait_seconds', { task_type: 'query_chatgpt' })).toBe(10);

    // HTTP: by route pattern and status; the POST /tasks route moved by exactly 100.
    const route = { method: 'POST', route: '/tasks', status_code: '201' };
    expect(delta(after, 'server', 'tasker_http_requests_total', route)).toBe(100);
    expect(
      countOf(after.server, 'tasker_http_request_duration_seconds', route) -
        countOf(before.server, 'tasker_http_request_duration_seconds', route),
    ).toBe(100);

    // Nothing moves later (no double counting), and the queue is empty.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const later = await scrape(workerUrl, TOKEN);
    expect(sampleValue(later, 'tasker_tasks_completed_total')).toBe(
      sampleValue(after.worker, 'tasker_tasks_completed_total'),
    );
    expect(sampleValue(later, 'tasker_tasks_failed_total')).toBe(
      sampleValue(after.worker, 'tasker_tasks_failed_total'),
    );
    for (const state of ['waiting', 'delayed', 'active'])
      expect(sampleValue(later, 'tasker_queue_jobs', { state }), state).toBe(0);
  });

  it('labels a request by its route pattern, never its raw URL, and counts open SSE streams', async () => {
    const id = '00000000-0000-4000-8000-000000000000';
    expect((await fetch(`${stack.url}/tasks/${id}`)).status).toBe(404);
    expect((await fetch(`${stack.url}/no/such/${id}`)).status).toBe(404);
    // A stream that stays open: a task due in ten minutes stays PENDING while the stream is read.
    const res = await post({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, delay_ms: 600_000 });
    const created = (await res.json()) as { id: string };
    const controller = new AbortController();
    const stream = await fetch(`${stack.url}/tasks/${created.id}/events`, { signal: controller.signal });
    expect(stream.status).toBe(200);
    await waitFor(
      async () => sampleValue(await scrape(stack.url, TOKEN), 'tasker_open_streams', { kind: 'sse' }) === 1,
    );
    const families = await scrape(stack.url, TOKEN);
    const routes = new Set(
      (families.families.find((f) => f.name === 'tasker_http_requests_total')?.metrics ?? []).map(
        (s) => s.labels?.route,
      ),
    );
    expect(routes).toContain('/tasks/:id');
    expect(routes).toContain('unmatched');
    expect([...routes].filter((r) => r?.includes(id))).toEqual([]);
    controller.abort();
    await waitFor(
      async () => sampleValue(await scrape(stack.url, TOKEN), 'tasker_open_streams', { kind: 'sse' }) === 0,
    );
  });
});

describe('tasker_live_event_delay_seconds', () => {
  it("counts each change a stream sends, from its commit to its write, but not the stream's first state; the end apart", async () => {
    const beforeScrape = await scrape(stack.url, TOKEN);
    const before = countOf(beforeScrape, 'tasker_live_event_delay_seconds');
    // Due in a second: PENDING when the stream opens (its first event, read then: not counted),
    // then each change heard from PostgreSQL as the worker runs it.
    const res = await post({ name: 'sum_two_numbers', input: { a: 2, b: 3 }, delay_ms: 1000 });
    const created = (await res.json()) as { id: string };
    const stream = await fetch(`${stack.url}/tasks/${created.id}/events`);
    const text = await stream.text(); // the stream ends after the terminal state
    const states = [...text.matchAll(/^data: (.*)$/gm)].map(
      (m) => (JSON.parse(m[1] ?? '') as { status: string }).status,
    );
    expect(states[0]).toBe('PENDING');
    expect(states.at(-1)).toBe('COMPLETED');
    const after = await scrape(stack.url, TOKEN);
    expect(countOf(after, 'tasker_live_event_delay_seconds') - before).toBe(states.length - 1);
    // The task's end apart from the changes before it (event="finished": COMPLETED here).
    expect(
      countOf(after, 'tasker_live_event_delay_seconds', { event: 'finished' }) -
        countOf(beforeScrape, 'tasker_live_event_delay_seconds', { event: 'finished' }),
    ).toBe(1);
    // Each within the largest finite bucket: a delay of seconds would mean a stalled feed.
    const family = after.histogramSamples.get('tasker_live_event_delay_seconds_bucket') ?? [];
    const within = family.filter((s) => s.labels?.le === '5').reduce((sum, s) => sum + Number(s.value), 0);
    expect(within).toBe(countOf(after, 'tasker_live_event_delay_seconds'));
  });
});

/** Metric names a PromQL expression uses: identifiers followed by `{`, `[`, `)` or the end, not functions or labels. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:tasker|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1] ?? '');
}

describe('tasker_tenant_tasks', () => {
  it('names the tenants with the most unfinished tasks, sums the rest under (other), and adds up to the table', async () => {
    const db = postgres(stack.env.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      // Delayed for a day: PENDING, and no worker takes them during the test.
      const insert = (tenant: string, n: number) => db`
        insert into tasks (id, owner_id, name, input, run_after)
        select gen_random_uuid(), ${tenant}, 'sum_two_numbers', '{"a":1,"b":1}', now() + interval '1 day'
        from generate_series(1, ${n})`;
      await insert('metrics-t1', 30);
      await insert('metrics-t2', 20);
      await insert('metrics-t3', 1);
      // Asleep for a day (ctx.sleep): WAITING, holding no slot; counted apart from the queued ones.
      await db`
        insert into tasks (id, owner_id, name, input, status, run_after, waiting_for)
        select gen_random_uuid(), 'metrics-t1', 'sum_two_numbers', '{"a":1,"b":1}', 'WAITING',
               now() + interval '1 day', jsonb_build_object('kind', 'time', 'until', now() + interval '1 day')
        from generate_series(1, 4)`;
      const families = await scrape(stack.url, TOKEN);
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: 'metrics-t1', state: 'waiting' })).toBe(
        4,
      );
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: 'metrics-t2', state: 'waiting' })).toBe(
        0,
      );
      // GET /queue says how many are suspended, beside the queue's depths.
      const queue = (await (await fetch(`${stack.url}/queue`)).json()) as { suspended: number };
      const [waiting] = await db<
        { n: number }[]
      >`select count(*)::int as n from tasks where status = 'WAITING'`;
      expect(queue.suspended).toBe(waiting?.n);
      expect(queue.suspended).toBeGreaterThanOrEqual(4);
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: 'metrics-t1', state: 'queued' })).toBe(
        30,
      );
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: 'metrics-t2', state: 'queued' })).toBe(
        20,
      );
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: 'metrics-t3', state: 'queued' })).toBe(0);
      const [row] = await db<
        { queued: number }[]
      >`select count(*)::int as queued from tasks where status = 'PENDING'`;
      expect(sampleValue(families, 'tasker_tenant_tasks', { state: 'queued' })).toBe(row?.queued);
      expect(sampleValue(families, 'tasker_tenant_tasks', { tenant: '(other)', state: 'queued' })).toBe(
        (row?.queued ?? 0) - 50,
      );
    } finally {
      await db`delete from tasks where owner_id like 'metrics-t%'`;
      await db.end();
    }
  });
});

describe('deploy/grafana/tasker.json', () => {
  it('queries only metrics that a real scrape of the server or the worker exposes (after the tasks above ran)', async () => {
    const scrapes = [await scrape(stack.url, TOKEN), await scrape(workerUrl, TOKEN)];
    const exposed = new Set(scrapes.flatMap((families) => [...exposedNames(families)]));
    const dashboard = JSON.parse(
      readFileSync(new URL('../../../deploy/grafana/tasker.json', import.meta.url), 'utf8'),
    ) as { panels: { title: string; targets?: { expr: string }[] }[] };
    const used = dashboard.panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr)));
    expect(used.length).toBeGreaterThan(10);
    expect([...new Set(used)].filter((name) => !exposed.has(name))).toEqual([]);
    // Every panel with queries draws something Tasker exposes.
    for (const panel of dashboard.panels.filter((p) => p.targets))
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
  });
});
