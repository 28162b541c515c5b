/**
 * The keys of a submission over REST (issue 18): `singleton_key`, `debounce: {key, delay_ms}` and
 * `concurrency_key`, with racing submissions, a real worker, two tenants and bad input. Runs in
 * both queue modes (`pnpm test`, `pnpm test:redis`).
 */
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './helpers.ts';

const RACERS = 20;
const METRICS_TOKEN = 'keys-metrics-token';

let stack: Stack;
let db: DbClient;
/** Two tenants' keys. */
const keys = { acme: '', globex: '' };

interface Task {
  id: string;
  status: string;
  input: { a: number; b: number };
  output: unknown;
  version: number;
  attempts: number;
  concurrencyKey: string;
  singletonKey: string | null;
  debounceKey: string | null;
  runAfter: string | null;
  startedAt: string | null;
  createdAt: string;
}

beforeAll(async () => {
  stack = await startStack({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', METRICS_TOKEN });
  db = createDb(stack.env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  const scopes: ApiKeyScope[] = ['tasks:write', 'tasks:read'];
  for (const tenant of ['acme', 'globex'] as const)
    keys[tenant] = (await store.create({ tenantId: tenant, name: 'keys', scopes, expiresAt: null })).key;
});
afterAll(async () => {
  await db?.close();
  await stack?.close();
});

async function call(method: string, path: string, body?: unknown, tenant: keyof typeof keys = 'acme') {
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${keys[tenant]}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const create = (body: Record<string, unknown>, tenant: keyof typeof keys = 'acme') =>
  call('POST', '/tasks', { name: 'sum_two_numbers', ...body }, tenant);
const getTask = async (id: string, tenant: keyof typeof keys = 'acme') =>
  (await call('GET', `/tasks/${id}`, undefined, tenant)).body as unknown as Task;
const countRows = async (where: string) =>
  Number((await db.sql.unsafe(`select count(*)::int as n from tasks where ${where}`))[0]?.n);
const unique = (what: string) => `${what}-${crypto.randomUUID()}`;

describe('singleton_key', () => {
  it(`${RACERS} racing POST /tasks with one key create one task: one 201, the others 200 with it`, async () => {
    const key = unique('nightly');
    // delay_ms: it stays PENDING (unfinished) while the others race.
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, a) =>
        create({ input: { a, b: 0 }, singleton_key: key, delay_ms: 60_000 }),
      ),
    );
    expect(answers.filter((r) => r.status === 201)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 200)).toHaveLength(RACERS - 1);
    const ids = new Set(answers.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    expect(answers.every((r) => r.body.singletonKey === key)).toBe(true);
    expect(await countRows(`singleton_key = '${key}'`)).toBe(1);
    // /run-task answers as for an idempotent replay: the id, and deduplicated.
    const legacy = await call('POST', '/run-task', {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
      singleton_key: key,
    });
    expect(legacy).toEqual({ status: 200, body: { task_uuid: [...ids][0], deduplicated: true } });
    const fresh = await call('POST', '/run-task', {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
      singleton_key: unique('other'),
      delay_ms: 60_000,
    });
    expect(fresh.body).toEqual({ task_uuid: expect.any(String), deduplicated: false });
    // Without a key, the old contract: exactly {task_uuid}.
    const plain = await call('POST', '/run-task', {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
    });
    expect(Object.keys(plain.body)).toEqual(['task_uuid']);
  });

  it('frees the key once its task finished: the next submission runs anew', async () => {
    const key = unique('once');
    const first = await create({ input: { a: 1, b: 2 }, singleton_key: key });
    expect(first.status).toBe(201);
    await waitFor(async () =>
      (await getTask(first.body.id as string)).status === 'COMPLETED' ? true : undefined,
    );
    const second = await create({ input: { a: 3, b: 4 }, singleton_key: key });
    expect(second.status).toBe(201);
    expect(second.body.id).not.toBe(first.body.id);
  });
});

describe('debounce', () => {
  it(`${RACERS} racing submissions, then one more: one task, every caller its id, run once ≈delay after the last with the last input`, async () => {
    const key = unique('reindex');
    const DELAY = 1500;
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, a) =>
        create({ input: { a, b: 0 }, debounce: { key, delay_ms: DELAY } }),
      ),
    );
    expect(answers.filter((r) => r.status === 201)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 200)).toHaveLength(RACERS - 1);
    const [id] = new Set(answers.map((r) => r.body.id));
    expect(new Set(answers.map((r) => r.body.id)).size).toBe(1);
    // "Last" is the last write to commit: the answer with the highest version carries its input.
    const last = answers.reduce((x, y) => ((y.body.version as number) > (x.body.version as number) ? y : x));
    const stored = await getTask(id as string);
    expect(stored.input).toEqual(last.body.input);
    expect(stored.version).toBe(last.body.version);

    // Later, once its job is queued (delayed), one more submission moves its start.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const moved = await create({ input: { a: 100, b: 23 }, debounce: { key, delay_ms: DELAY } });
    const lastAt = Date.now();
    expect(moved).toMatchObject({ status: 200, body: { id, input: { a: 100, b: 23 }, debounceKey: key } });
    const done = await waitFor(
      async () => {
        const task = await getTask(id as string);
        return task.status === 'COMPLETED' ? task : undefined;
      },
      { timeoutMs: 15_000, what: 'the debounced task' },
    );
    expect(done).toMatchObject({ output: 123, attempts: 1, input: { a: 100, b: 23 } });
    // It started no sooner than the delay after the last submission (the server's clock, the test's: one machine).
    const started = Date.parse(done.startedAt ?? '');
    expect(started).toBeGreaterThanOrEqual(lastAt + DELAY - 100);
    expect(started).toBeLessThan(lastAt + DELAY + 5_000);
    expect(await countRows(`debounce_key = '${key}'`)).toBe(1);
    // Once started, the key opens a new task.
    const after = await create({ input: { a: 1, b: 1 }, debounce: { key, delay_ms: 60_000 } });
    expect(after.status).toBe(201);
    expect(after.body.id).not.toBe(id);
  });

  it('/run-task answers a joined submission with deduplicated: true', async () => {
    const key = unique('legacy');
    const body = {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
      debounce: { key, delay_ms: 60_000 },
    };
    const first = await call('POST', '/run-task', body);
    const second = await call('POST', '/run-task', body);
    expect(first.body).toEqual({ task_uuid: expect.any(String), deduplicated: false });
    expect(second.body).toEqual({ task_uuid: first.body.task_uuid, deduplicated: true });
  });

  it('refuses another task type under a held key: 400 naming debounce.key, nothing written', async () => {
    const key = unique('typed');
    const held = await create({ input: { a: 1, b: 1 }, debounce: { key, delay_ms: 60_000 } });
    const other = await call('POST', '/tasks', {
      name: 'find_longest_consecutive_letters',
      input: { string: 'aa' },
      debounce: { key, delay_ms: 60_000 },
    });
    expect(other.status).toBe(400);
    expect(other.body.error).toMatch(/^debounce\.key: is held by a PENDING sum_two_numbers task/);
    expect((await getTask(held.body.id as string)).version).toBe(held.body.version);
  });
});

describe('concurrency_key', () => {
  it('is shown in GET /tasks/{id} and in the list; the tenant when none was given', async () => {
    const keyed = await create({ input: { a: 1, b: 2 }, concurrency_key: 'customer-7', delay_ms: 60_000 });
    const plain = await create({ input: { a: 1, b: 2 }, delay_ms: 60_000 });
    expect(keyed.body.concurrencyKey).toBe('customer-7');
    expect((await getTask(keyed.body.id as string)).concurrencyKey).toBe('customer-7');
    expect((await getTask(plain.body.id as string)).concurrencyKey).toBe('acme');
    const page = (await call('GET', '/tasks?status=PENDING&limit=500')).body as {
      tasks: { id: string; concurrencyKey: string }[];
    };
    expect(page.tasks.find((t) => t.id === keyed.body.id)?.concurrencyKey).toBe('customer-7');
    expect(page.tasks.find((t) => t.id === plain.body.id)?.concurrencyKey).toBe('acme');
    // A row from before the column: its tenant.
    await db.sql`update tasks set concurrency_key = null where id = ${plain.body.id as string}`;
    expect((await getTask(plain.body.id as string)).concurrencyKey).toBe('acme');
  });
});

describe('each key is per tenant', () => {
  it("another tenant's same singleton, debounce or concurrency key never meets this one's", async () => {
    const key = unique('shared');
    for (const options of [
      { singleton_key: key, delay_ms: 60_000 },
      { debounce: { key, delay_ms: 60_000 } },
    ]) {
      const mine = await create({ input: { a: 1, b: 1 }, ...options }, 'acme');
      const theirs = await create({ input: { a: 2, b: 2 }, ...options }, 'globex');
      expect([mine.status, theirs.status]).toEqual([201, 201]);
      expect(theirs.body.id).not.toBe(mine.body.id);
      const again = await create({ input: { a: 3, b: 3 }, ...options }, 'globex');
      expect(again).toMatchObject({ status: 200, body: { id: theirs.body.id } });
      expect((await call('GET', `/tasks/${mine.body.id}`, undefined, 'globex')).status).toBe(404);
    }
    const mine = await create({ input: { a: 1, b: 1 }, concurrency_key: key, delay_ms: 60_000 }, 'acme');
    const theirs = await create({ input: { a: 1, b: 1 }, concurrency_key: key, delay_ms: 60_000 }, 'globex');
    expect(theirs.body.id).not.toBe(mine.body.id);
  });
});

/** The first segment of the first issue's path, e.g. `debounce` of `debounce.key`. */
const firstIssueField = (body: Record<string, unknown>) =>
  (body.issues as { path: string }[] | undefined)?.[0]?.path.split('.')[0];

describe('bad input', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a debounce without a key', { debounce: { delay_ms: 100 } }, /debounce\.key/],
    ['a negative debounce delay', { debounce: { key: 'k', delay_ms: -1 } }, /debounce\.delay_ms/],
    ['a debounce delay over a day', { debounce: { key: 'k', delay_ms: 86_400_001 } }, /debounce\.delay_ms/],
    ['a debounce without its delay', { debounce: { key: 'k' } }, /debounce\.delay_ms/],
    ['an empty debounce key', { debounce: { key: '', delay_ms: 5 } }, /debounce\.key/],
    ['an unknown debounce field', { debounce: { key: 'k', delay_ms: 5, delayMs: 5 } }, /debounce/],
    [
      'a debounce with delay_ms',
      { debounce: { key: 'k', delay_ms: 5 }, delay_ms: 5 },
      /^debounce: .*delay_ms/,
    ],
    [
      'a debounce with a singleton_key',
      { debounce: { key: 'k', delay_ms: 5 }, singleton_key: 's' },
      /^debounce: /,
    ],
    [
      'a debounce with an idempotency_key',
      { debounce: { key: 'k', delay_ms: 5 }, idempotency_key: 'i' },
      /^debounce: /,
    ],
    ['a singleton_key of 201 characters', { singleton_key: 'x'.repeat(201) }, /singleton_key/],
    [
      "an idempotency_key in child tasks' reserved form",
      { idempotency_key: `$child:${crypto.randomUUID()}:0:0` },
      /idempotency_key/,
    ],
    ['an empty concurrency_key', { concurrency_key: '' }, /concurrency_key/],
    [
      'a concurrency_key with a control character',
      { concurrency_key: 'a\u0007b' },
      /concurrency_key: must hold no control character/,
    ],
    ['a ttl below 100 ms', { ttl_ms: 99 }, /ttl_ms/],
  ];
  it.each(cases)('%s: 400 naming the field, nothing stored (both doors)', async (_what, options, named) => {
    const before = await countRows('true');
    const created = await create({ input: { a: 1, b: 1 }, ...options });
    expect(created.status).toBe(400);
    expect(created.body.error).toMatch(named);
    // The issues name the field too (the SDK reads them): the first option given is the one at fault.
    const field = Object.keys(options)[0];
    expect(firstIssueField(created.body)).toBe(field);
    const legacy = await call('POST', '/run-task', {
      task_name: 'sum_two_numbers',
      task_parameters: { a: 1, b: 1 },
      ...options,
    });
    expect(legacy.status).toBe(400);
    expect(legacy.body.error).toMatch(named);
    expect(firstIssueField(legacy.body)).toBe(field);
    expect(await countRows('true')).toBe(before);
  });
});

describe('metrics', () => {
  it('counts debounced submissions and singleton returns', async () => {
    const res = await fetch(`${stack.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    const text = await res.text();
    const value = (series: string) => Number(new RegExp(`^${series} (\\d+)$`, 'm').exec(text)?.[1] ?? 'NaN');
    expect(value('tasker_tasks_debounced_total\\{task_type="sum_two_numbers"\\}')).toBeGreaterThanOrEqual(
      RACERS,
    );
    expect(
      value('tasker_tasks_deduplicated_total\\{task_type="sum_two_numbers",reason="singleton"\\}'),
    ).toBeGreaterThanOrEqual(RACERS);
    expect(value('tasker_tasks_debounced_total\\{task_type="query_chatgpt"\\}')).toBe(0);
  });
});
