/**
 * Prism-clean: real traffic through Stoplight Prism's validation proxy (`prism proxy`, 5.16) in front
 * of a real server (AUTH_MODE=required, a rate limit, a small body limit, PostgreSQL behind a TCP
 * proxy that can be cut), covering every operation of /openapi.json with its success and each error
 * status it documents. Prism reports what it finds in the `sl-violations` header of each answer
 * (`--errors=false`: it reports, and passes the server's answer through unchanged). There must be
 * no response violation (a body, header or status the document does not describe), every answer
 * must have the status the case expects, and every documented status must be exercised, or skipped
 * here with a reason. A new operation in the document fails this test until it has its cases.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type ApiKeyScope,
  ApiKeyStore,
  createDb,
  type DbClient,
  hashTokenSecret,
  LimitStore,
  WaitTokens,
  WebhookStore,
} from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import {
  createTestEnv,
  freePort,
  startTcpProxy,
  type TcpProxy,
  type TestEnv,
  waitFor,
} from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';
import { createdAtOf } from './helpers.ts';

const RATE_LIMIT = 300;
const BODY_LIMIT = 4096;
const METRICS_TOKEN = 'prism-metrics-token';
const ALL_SCOPES: ApiKeyScope[] = ['tasks:write', 'tasks:read', 'admin', 'operator'];

interface Operation {
  operationId: string;
  responses: Record<string, { description: string }>;
}
type Doc = { paths: Record<string, Record<string, Operation>> };

/** Which key a request carries: one with every scope, one lacking the operation's scope, an exhausted one, a malformed one, or none. */
type KeyChoice = 'admin' | 'lacking' | 'limited' | 'malformed' | 'none';
interface Case {
  status: number;
  /** Defaults: the operation's own method, and its path with the sample ids below. */
  method?: string;
  path?: string;
  key?: KeyChoice;
  /** A JSON body; or `raw` with its content type. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** A key of its own, instead of `key`. */
  bearer?: string;
  what: string;
  /**
   * Sent to the server itself, not through Prism: Prism 5.16 never answers a request whose JSON body
   * it cannot parse (the client waits until it gives up), so a malformed body cannot go through it.
   * The answer is checked here instead: a documented status, in the Error shape.
   */
  direct?: true;
}

let env: TestEnv;
let pg: TcpProxy;
let server: TaskerServer;
let db: DbClient;
let prism: ChildProcess | undefined;
let prismLog = '';
let dir: string;
let doc: Doc;
let base: string;
const keys = {} as Record<
  'admin' | 'limited' | 'tenantAdmin' | 'operatorOnly' | 'full' | 'budget' | `without:${ApiKeyScope}`,
  string
>;
/** Makes a key with every scope, never used yet (so not in the server's key cache). */
let freshKey: () => Promise<string>;
/** Ids made in setup: each operation's cases use them. */
const ids = {
  pending: '',
  toCancel: '',
  toRetry: '',
  finished: '',
  keyToRevoke: '',
  /** A key of another tenant, and an operator key of this one: a tenant admin may revoke neither. */
  otherTenantKey: '',
  operatorKey: '',
  /** A schedule of tenant prism, and one to delete. */
  schedule: '',
  scheduleToDelete: '',
  /** A webhook of tenant prism (its receiver: `receiver`), one to delete, and a delivery of the first. */
  webhook: '',
  webhookToDelete: '',
  delivery: '',
  /** A bulk operation of tenant prism (recorded; no worker runs here, so it stays running). */
  operation: '',
  /** Wait tokens of the pending task: one to complete, one completed already; a callback secret to use. */
  token: '',
  tokenCompleted: '',
  callbackSecret: 'c'.repeat(43),
  unknown: randomUUID(),
};
/** The receiver of the webhooks made here: answers 204 to anything (WEBHOOK_ALLOW_PRIVATE=1). */
let receiver: Server;
let receiverUrl = '';

/** The CLI's entry, run with this Node (its .bin shim would pick whatever `node` is on PATH). */
function prismEntry(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@stoplight/prism-cli/package.json')), 'dist', 'index.js');
}

async function direct(method: string, path: string, key?: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(`${server.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function submit(): Promise<string> {
  const res = await direct('POST', '/run-task', keys.admin, {
    task_name: 'sum_two_numbers',
    task_parameters: { a: 1, b: 2 },
  });
  if (res.status !== 200) throw new Error(`run-task: ${res.status}`);
  return ((await res.json()) as { task_uuid: string }).task_uuid;
}

beforeAll(async () => {
  // PostgreSQL through a TCP proxy, to answer 503s by cutting it.
  const url = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres');
  pg = await startTcpProxy(Number(url.port || 5432));
  url.port = String(pg.port);
  url.pathname = `/tasker_test_prism_${Date.now()}_${process.pid}`;
  env = createTestEnv({
    DATABASE_URL: url.toString(),
    AUTH_MODE: 'required',
    RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
    BODY_LIMIT_BYTES: String(BODY_LIMIT),
    OPENAI_API_KEY: '',
    METRICS_TOKEN: METRICS_TOKEN,
    SCHEDULE_MIN_INTERVAL_MS: '2000',
    WEBHOOK_ALLOW_PRIVATE: '1',
  });
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const bound = receiver.address();
  receiverUrl = `http://127.0.0.1:${typeof bound === 'object' && bound ? bound.port : 0}/hook`;
  const parsed = loadEnv(env.vars);
  server = await startServer(parsed, createLogger(parsed, 'test-prism'));
  db = createDb(env.databaseUrl, { max: 1 });
  const store = new ApiKeyStore(db.db);
  const key = async (scopes: ApiKeyScope[]) =>
    (await store.create({ tenantId: 'prism', name: 'prism', scopes, expiresAt: null })).key;
  keys.admin = await key(ALL_SCOPES);
  keys.limited = await key(ALL_SCOPES);
  // `operator` includes `admin`: a key lacking admin lacks operator too.
  for (const scope of ALL_SCOPES)
    keys[`without:${scope}`] = await key(
      ALL_SCOPES.filter((s) => s !== scope && !(scope === 'admin' && s === 'operator')),
    );
  keys.tenantAdmin = await key(['tasks:write', 'tasks:read', 'admin']);
  keys.operatorOnly = await key(['operator']);
  ids.otherTenantKey = (
    await store.create({ tenantId: 'prism-other', name: 'theirs', scopes: ['tasks:read'], expiresAt: null })
  ).info.id;
  ids.operatorKey = (
    await store.create({ tenantId: 'prism', name: 'ops', scopes: ['operator'], expiresAt: null })
  ).info.id;
  freshKey = () => key(ALL_SCOPES);
  // A tenant whose queue is full (max_queued 0): its submissions answer 429 QUEUE_FULL.
  keys.full = (
    await store.create({ tenantId: 'prism-full', name: 'full', scopes: ['tasks:write'], expiresAt: null })
  ).key;
  await new LimitStore(db.db).setTenant('prism-full', { maxQueued: 0 });
  // A tenant whose LLM budget is 0 tokens a day: its LLM submissions answer 429 BUDGET_EXCEEDED.
  keys.budget = (
    await store.create({ tenantId: 'prism-budget', name: 'budget', scopes: ['tasks:write'], expiresAt: null })
  ).key;
  await new LimitStore(db.db).setTenant('prism-budget', { llmTokensPerDay: 0 });
  // A model call in the ledger (no worker runs here): GET /usage has a row to report.
  await db.sql`insert into task_llm_calls (tenant_id, task_id, task_name, attempt, base_url, model, prompt_tokens, completion_tokens, cost_usd)
    values ('prism', ${randomUUID()}, 'query_chatgpt', 1, 'http://127.0.0.1:9/v1', 'gpt-4o-mini', 120, 30, 0.000036)`;
  ids.keyToRevoke = (
    await store.create({ tenantId: 'prism', name: 'old', scopes: ['tasks:read'], expiresAt: null })
  ).info.id;

  // A webhook told of cancelled tasks: the cancels below store its deliveries (no worker sends them).
  const webhooks = new WebhookStore(db.db);
  const hook = async () =>
    (await webhooks.create({ tenantId: 'prism', url: receiverUrl, events: ['task.cancelled'] })).info.id;
  ids.webhook = await hook();
  ids.webhookToDelete = await hook();

  // No worker runs: submitted tasks stay PENDING until cancelled.
  ids.pending = await submit();
  ids.toCancel = await submit();
  ids.toRetry = await submit();
  ids.finished = await submit();
  for (const id of [ids.toRetry, ids.finished]) await direct('POST', `/tasks/${id}/cancel`, keys.admin);
  // Two schedules (no worker runs: they fire nothing here).
  const schedule = async () => {
    const res = await direct('POST', '/schedules', keys.admin, {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      cron: '0 * * * *',
    });
    if (res.status !== 201) throw new Error(`POST /schedules: ${res.status}`);
    return ((await res.json()) as { id: string }).id;
  };
  ids.schedule = await schedule();
  ids.scheduleToDelete = await schedule();
  const operation = await direct('POST', '/tasks/cancel', keys.admin, {
    filter: { name: ['find_longest_consecutive_letters'] },
  });
  if (operation.status !== 202) throw new Error(`POST /tasks/cancel: ${operation.status}`);
  ids.operation = ((await operation.json()) as { id: string }).id;
  const [delivery] = await webhooks.deliveries(ids.webhook, { limit: 1 });
  if (!delivery) throw new Error('no delivery stored by the cancel');
  ids.delivery = delivery.id;
  // Wait tokens of the pending task (made in the store: no worker runs, no handler waits here).
  const tokens = new WaitTokens(db.sql);
  const token = async (secret: string, seq: number) => {
    const id = randomUUID();
    await tokens.create({
      id,
      tenantId: 'prism',
      taskId: ids.pending,
      taskCreatedAt: createdAtOf(ids.pending),
      stepId: `$token:${seq}`,
      seq,
      secretHash: hashTokenSecret(secret),
      timeoutAt: new Date(Date.now() + 3_600_000),
      result: { id },
      startedAt: new Date(),
    });
    return id;
  };
  ids.token = await token('a'.repeat(43), 0);
  ids.tokenCompleted = await token('b'.repeat(43), 1);
  await tokens.complete({ id: ids.tokenCompleted }, null);
  await token(ids.callbackSecret, 2);

  doc = (await (await direct('GET', '/openapi.json')).json()) as Doc;
  dir = await mkdtemp(join(tmpdir(), 'tasker-prism-'));
  await writeFile(join(dir, 'openapi.json'), JSON.stringify(doc));
  const port = await freePort();
  prism = spawn(
    process.execPath,
    [
      prismEntry(),
      'proxy',
      join(dir, 'openapi.json'),
      server.url,
      '--errors=false',
      '--host=127.0.0.1',
      `--port=${port}`,
      '--verboseLevel=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const collect = (chunk: Buffer) => {
    prismLog = (prismLog + chunk.toString()).slice(-20_000);
  };
  prism.stdout?.on('data', collect);
  prism.stderr?.on('data', collect);
  base = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (prism?.exitCode !== null) throw new Error(`prism exited: ${prismLog}`);
      return (await fetch(`${base}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'prism proxy' },
  );
}, 60_000);

afterAll(async () => {
  if (prism && prism.exitCode === null) {
    const exited = new Promise((resolve) => prism?.once('exit', resolve));
    prism.kill('SIGTERM');
    const timer = setTimeout(() => prism?.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
  await server?.close();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  await pg?.up().catch(() => {}); // the test database is dropped through it
  await db?.close();
  await env?.cleanup();
  await pg?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The scope an operation needs, read from its documented 403. */
function scopeOf(op: Operation): ApiKeyScope | undefined {
  const words = op.responses['403']?.description ?? '';
  return ALL_SCOPES.find((scope) => words.includes(`the ${scope} scope`));
}

const json = (body: unknown): Pick<Case, 'body'> => ({ body });
const big = 'x'.repeat(BODY_LIMIT * 2);

/** A body that is not JSON, sent to the server itself (Prism never answers one: see `direct`). */
const notJson = (path: string | undefined, raw = '{'): Case => ({
  status: 400,
  what: 'not JSON',
  ...(path === undefined ? {} : { path }),
  raw,
  contentType: 'application/json',
  direct: true,
});

/**
 * The cases of a submit door, the same scenarios on both: run-task takes `{task_name,
 * task_parameters}` and answers a new task 200, POST /tasks takes `{name, input}` and answers 201;
 * the run options are the same, and a task that answers instead of a new one (its singleton_key or
 * debounce key held) is a 200 on both. Each door its own keys, so that one's tasks never hold the other's.
 */
function submitCases(door: 'run-task' | 'tasks'): Case[] {
  const created = door === 'run-task' ? 200 : 201;
  const task = (name: string, parameters: unknown, options: object = {}) =>
    json(
      door === 'run-task'
        ? { task_name: name, task_parameters: parameters, ...options }
        : { name, input: parameters, ...options },
    );
  const sum = (extra: object = {}) => task('sum_two_numbers', { a: 1, b: 2 }, extra);
  const singleton = { singleton_key: `prism-${door}-singleton` };
  const debounced = {
    debounce: { key: `prism-${door}-debounce`, delay_ms: 60_000 },
    concurrency_key: 'prism-customer',
    ttl_ms: 600_000,
  };
  return [
    { status: created, what: 'submits', ...task('sum_two_numbers', { a: 5, b: 10 }, { priority: 5 }) },
    {
      status: created,
      what: 'submits, delayed',
      ...task('find_longest_consecutive_letters', { string: 'aab' }, { delay_ms: 60_000 }),
    },
    { status: 400, what: 'wrong parameter type', ...task('sum_two_numbers', { a: '5', b: 1 }) },
    { status: 400, what: 'parameters of another type', ...task('sum_two_numbers', { string: 'a' }) },
    { status: 400, what: 'unknown task', ...task('nope', {}) },
    { status: 400, what: 'unknown field', ...sum({ x: 1 }) },
    { status: 400, what: 'an array body', ...json([1]) },
    { status: created, what: 'with a singleton_key no task holds', ...sum(singleton) },
    { status: 200, what: 'an unfinished task holds the singleton_key: it answers', ...sum(singleton) },
    { status: created, what: 'debounced, a new task, with a concurrency_key and a ttl', ...sum(debounced) },
    { status: 200, what: 'debounced into the task holding the key', ...sum(debounced) },
    { status: 400, what: 'a debounce without a key', ...sum({ debounce: { delay_ms: 5 } }) },
    {
      status: 400,
      what: 'a debounce delay over a day',
      ...sum({ debounce: { key: 'k', delay_ms: 86_400_001 } }),
    },
    notJson(undefined, door === 'run-task' ? '{"task_name":' : '{"name":'),
    { status: 503, what: 'query_chatgpt without OPENAI_API_KEY', ...task('query_chatgpt', { prompt: 'hi' }) },
    { status: 429, what: "QUEUE_FULL: its tenant's max_queued is 0", bearer: keys.full, ...sum() },
    {
      status: 429,
      what: "BUDGET_EXCEEDED: its tenant's llm_tokens_per_day is 0 (Retry-After)",
      bearer: keys.budget,
      ...task('query_chatgpt', { prompt: 'hi' }),
    },
    {
      status: created,
      what: 'with tags and metadata',
      ...sum({ tags: ['prism', 'nightly'], metadata: { team: 'billing', run: 7 } }),
    },
    { status: 400, what: 'eleven tags', ...sum({ tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }) },
    { status: 400, what: 'metadata not an object', ...sum({ metadata: [1] }) },
  ];
}

/** POST /tasks/batch: all or nothing; an item's key answers per item; 200 when nothing was created. */
function batchCases(): Case[] {
  const path = '/tasks/batch';
  const item = (extra: object = {}) => ({ name: 'sum_two_numbers', input: { a: 1, b: 2 }, ...extra });
  const singleton = { singleton_key: 'prism-batch-singleton' };
  return [
    {
      status: 201,
      what: 'stores a batch',
      path,
      ...json({
        tasks: [item({ tags: ['prism'], metadata: { team: 'a' } }), item({ priority: 3 }), item(singleton)],
      }),
    },
    {
      status: 200,
      what: 'every item matched by its key: nothing created',
      path,
      ...json({ tasks: [item(singleton)] }),
    },
    {
      status: 400,
      what: 'bad items (their indexes in the issues)',
      path,
      ...json({ tasks: [item(), item({ input: { a: 'x', b: 2 } }), item({ priority: 101 })] }),
    },
    { status: 400, what: 'no tasks', path, ...json({ tasks: [] }) },
    {
      status: 400,
      what: 'a debounce in a batch',
      path,
      ...json({ tasks: [item({ debounce: { key: 'k', delay_ms: 5 } })] }),
    },
    notJson(path),
    {
      status: 503,
      what: 'query_chatgpt without OPENAI_API_KEY',
      path,
      ...json({ tasks: [{ name: 'query_chatgpt', input: { prompt: 'hi' } }] }),
    },
    {
      status: 429,
      what: "QUEUE_FULL: its tenant's max_queued is 0",
      path,
      bearer: keys.full,
      ...json({ tasks: [item()] }),
    },
    {
      status: 429,
      what: "BUDGET_EXCEEDED: its tenant's llm_tokens_per_day is 0",
      path,
      bearer: keys.budget,
      ...json({ tasks: [item(), { name: 'query_chatgpt', input: { prompt: 'hi' } }] }),
    },
  ];
}

/** The limits of a tenant, and of a task type. */
const tenantLimits = (tenant: string) => `/tenants/${tenant}/limits`;
const typeLimits = (name: string) => `/task-types/${name}/limits`;
const tenantCase = (status: number, what: string, tenant: string, more: Partial<Case> = {}): Case => ({
  status,
  what,
  path: tenantLimits(tenant),
  ...more,
});
const typeCase = (status: number, what: string, name: string, more: Partial<Case> = {}): Case => ({
  status,
  what,
  path: typeLimits(name),
  ...more,
});
/** A tenant admin's key on another tenant's limits: 403 (with the body of the method, if it takes one). */
const otherTenantCase = (body?: object): Case =>
  tenantCase(403, "a tenant admin, another tenant's", 'prism-other', {
    bearer: keys.tenantAdmin,
    ...(body === undefined ? {} : json(body)),
  });
/** A tenant admin's key on an operator's route (the list of tenants, a task type's limits): 403. */
const operatorOnlyCase = (path: string, body?: object): Case => ({
  status: 403,
  what: 'a tenant admin (operator only)',
  path,
  bearer: keys.tenantAdmin,
  ...(body === undefined ? {} : json(body)),
});

/** POST /tasks/cancel or /tasks/retry: a filter (202), a dry run (200), and the filters it refuses. */
const bulkCases = (path: string, status: string[]): Case[] => [
  {
    status: 202,
    what: 'starts an operation',
    path,
    ...json({ filter: { status, name: ['sum_two_numbers'] } }),
  },
  {
    status: 200,
    what: 'a dry run: the count',
    path,
    ...json({ filter: { tag: ['nightly'], created_after: '2026-01-01T00:00:00Z' }, dry_run: true }),
  },
  { status: 400, what: 'an empty filter', path, ...json({ filter: {} }) },
  { status: 400, what: 'no filter', path, ...json({ dry_run: true }) },
  { status: 400, what: 'an unknown status', path, ...json({ filter: { status: ['DONE'] } }) },
  { status: 400, what: 'input_contains not JSON', path, ...json({ filter: { input_contains: '{' } }) },
  notJson(path),
];

/**
 * The cases of each operation, by "METHOD path", beyond those every operation of its kind gets
 * (see `commonCases`). A new operation must be added here.
 */
const CASES: Record<string, () => Case[]> = {
  'POST /run-task': () => submitCases('run-task'),
  'GET /get-task-output': () => [
    { status: 200, what: 'a pending task', path: `/get-task-output?task_uuid=${ids.pending}` },
    { status: 400, what: 'malformed id', path: '/get-task-output?task_uuid=nope' },
    { status: 400, what: 'no id', path: '/get-task-output' },
    { status: 404, what: 'unknown id', path: `/get-task-output?task_uuid=${ids.unknown}` },
  ],
  'POST /tasks': () => submitCases('tasks'),
  'POST /tasks/batch': batchCases,
  'GET /tasks': () => [
    { status: 200, what: 'lists', path: '/tasks?limit=2' },
    { status: 200, what: 'filters', path: '/tasks?status=PENDING,CANCELLED&name=sum_two_numbers' },
    { status: 400, what: 'limit out of range', path: '/tasks?limit=0' },
    { status: 400, what: 'unknown status', path: '/tasks?status=DONE' },
    { status: 400, what: 'bad cursor', path: '/tasks?cursor=%%%' },
    {
      status: 200,
      what: 'payload search',
      path: `/tasks?input_contains=${encodeURIComponent('{"a":1}')}&output_contains=3&status=CANCELLED`,
    },
    { status: 400, what: 'payload search that is not JSON', path: '/tasks?input_contains=%7Ba' },
    {
      status: 200,
      what: 'tag and metadata filters',
      path: `/tasks?tag=prism,nightly&metadata_contains=${encodeURIComponent('{"team":"billing"}')}`,
    },
    { status: 400, what: 'metadata_contains not an object', path: '/tasks?metadata_contains=%5B1%5D' },
  ],
  'GET /tasks/{id}': () => [
    { status: 200, what: 'pending', path: `/tasks/${ids.pending}` },
    { status: 200, what: 'cancelled', path: `/tasks/${ids.finished}` },
    { status: 400, what: 'malformed id', path: '/tasks/nope' },
    { status: 404, what: 'unknown id', path: `/tasks/${ids.unknown}` },
  ],
  'POST /tasks/{id}/cancel': () => [
    { status: 200, what: 'cancels a pending task', path: `/tasks/${ids.toCancel}/cancel` },
    { status: 409, what: 'already finished', path: `/tasks/${ids.finished}/cancel` },
    { status: 400, what: 'malformed id', path: '/tasks/nope/cancel' },
    { status: 404, what: 'unknown id', path: `/tasks/${ids.unknown}/cancel` },
    notJson(`/tasks/${ids.pending}/cancel`),
  ],
  'POST /tasks/{id}/retry': () => [
    { status: 200, what: 'retries a cancelled task', path: `/tasks/${ids.toRetry}/retry` },
    { status: 409, what: 'a pending task', path: `/tasks/${ids.pending}/retry` },
    { status: 400, what: 'malformed id', path: '/tasks/nope/retry' },
    { status: 404, what: 'unknown id', path: `/tasks/${ids.unknown}/retry` },
  ],
  'POST /tasks/cancel': () => bulkCases('/tasks/cancel', ['PENDING']),
  'POST /tasks/retry': () => bulkCases('/tasks/retry', ['CANCELLED', 'FAILED']),
  'GET /operations/{id}': () => [
    { status: 200, what: 'an operation of this tenant', path: `/operations/${ids.operation}` },
    { status: 400, what: 'malformed id', path: '/operations/nope' },
    { status: 404, what: 'unknown id', path: `/operations/${ids.unknown}` },
  ],
  'GET /task-types': () => [{ status: 200, what: 'the catalog' }],
  'GET /tenants/{tenant}/limits': () => [
    tenantCase(200, "a tenant's", 'prism'),
    tenantCase(200, 'a tenant admin: its own', 'prism', { bearer: keys.tenantAdmin }),
    otherTenantCase(),
    tenantCase(400, 'malformed tenant', 'a%20b'),
  ],
  'PUT /tenants/{tenant}/limits': () => [
    tenantCase(
      200,
      "an operator, another tenant's",
      'prism-other',
      json({ max_running: 10, max_queued: 1000 }),
    ),
    tenantCase(
      200,
      'LLM budgets: tokens a day, dollars a month',
      'prism-other',
      json({ llm_tokens_per_day: 1_000_000, llm_cost_per_month_usd: 12.5 }),
    ),
    tenantCase(400, 'a negative budget', 'prism', json({ llm_cost_per_month_usd: -1 })),
    tenantCase(403, "a tenant admin, its own LLM budget: an operator's to set", 'prism', {
      bearer: keys.tenantAdmin,
      ...json({ llm_tokens_per_day: 1_000_000 }),
    }),
    tenantCase(200, 'a tenant admin, its own: back to the default', 'prism', {
      bearer: keys.tenantAdmin,
      ...json({ starts_per_minute: null }),
    }),
    otherTenantCase({ max_queued: 1 }),
    tenantCase(400, 'a negative limit', 'prism', json({ max_queued: -1 })),
    tenantCase(400, 'an absurd limit', 'prism', json({ max_running: 1_000_000_000 })),
    tenantCase(400, 'a tenant nothing belongs to', 'nobody-at-all', json({ max_queued: 5 })),
    notJson(tenantLimits('prism')),
  ],
  'DELETE /tenants/{tenant}/limits': () => [
    tenantCase(200, 'back to the defaults', 'prism-other'),
    otherTenantCase(),
    tenantCase(400, 'malformed tenant', 'a%20b'),
    notJson(tenantLimits('prism')),
  ],
  'GET /tenants': () => [
    { status: 200, what: 'a page', path: '/tenants?limit=2' },
    { status: 200, what: 'after a cursor', path: '/tenants?cursor=prism' },
    operatorOnlyCase('/tenants'),
    { status: 400, what: 'limit out of range', path: '/tenants?limit=0' },
  ],
  'GET /task-types/{name}/limits': () => [
    typeCase(200, "a type's", 'sum_two_numbers'),
    operatorOnlyCase(typeLimits('sum_two_numbers')),
    typeCase(400, 'unknown type', 'nope'),
  ],
  'PUT /task-types/{name}/limits': () => [
    typeCase(
      200,
      'sets',
      'find_longest_consecutive_letters',
      json({ max_running: 100, max_running_per_key: 10 }),
    ),
    operatorOnlyCase(typeLimits('find_longest_consecutive_letters'), { max_running: 1 }),
    typeCase(400, 'unknown type', 'nope', json({ max_running: 1 })),
    typeCase(400, 'a negative limit', 'find_longest_consecutive_letters', json({ max_running_per_key: -1 })),
  ],
  'DELETE /task-types/{name}/limits': () => [
    typeCase(200, 'back to the defaults', 'find_longest_consecutive_letters'),
    operatorOnlyCase(typeLimits('find_longest_consecutive_letters')),
    typeCase(400, 'unknown type', 'nope'),
    notJson(typeLimits('sum_two_numbers')),
  ],
  'GET /queue': () => [
    { status: 200, what: 'its state' },
    { status: 403, what: "a tenant's admin key (the queue is every tenant's)", bearer: keys.tenantAdmin },
  ],
  'POST /queue/pause': () => [
    { status: 200, what: 'one type', ...json({ task_name: 'find_longest_consecutive_letters' }) },
    { status: 200, what: 'every type, no body' },
    {
      status: 200,
      what: 'an operator key (the operator scope alone)',
      bearer: keys.operatorOnly,
      ...json({ task_name: 'find_longest_consecutive_letters' }),
    },
    {
      status: 403,
      what: "a tenant's admin key (admin, not operator)",
      bearer: keys.tenantAdmin,
      ...json({ task_name: 'find_longest_consecutive_letters' }),
    },
    { status: 400, what: 'unknown type', ...json({ task_name: 'nope' }) },
  ],
  'POST /queue/resume': () => [
    { status: 200, what: 'every type', ...json({}) },
    { status: 200, what: 'one type', ...json({ task_name: 'find_longest_consecutive_letters' }) },
    { status: 400, what: 'unknown type', ...json({ task_name: 'nope' }) },
  ],
  'POST /api-keys': () => [
    {
      status: 200,
      what: 'creates',
      ...json({ tenant: 'prism-2', name: 'ci', scopes: ['tasks:read'], expires_in_s: 3600 }),
    },
    {
      status: 200,
      what: 'an operator key gives the operator scope',
      ...json({ tenant: 'ops', name: 'second operator', scopes: ['operator'] }),
    },
    {
      status: 200,
      what: 'a tenant admin, for its own tenant (the default)',
      bearer: keys.tenantAdmin,
      ...json({ name: 'mine', scopes: ['tasks:read', 'admin'] }),
    },
    {
      status: 403,
      what: 'a tenant admin, for another tenant',
      bearer: keys.tenantAdmin,
      ...json({ tenant: 'prism-2', name: 'theirs', scopes: ['tasks:read'] }),
    },
    {
      status: 403,
      what: 'a tenant admin giving the operator scope',
      bearer: keys.tenantAdmin,
      ...json({ name: 'escalate', scopes: ['operator'] }),
    },
    { status: 400, what: 'no scopes', ...json({ tenant: 'prism-2', name: 'ci', scopes: [] }) },
    { status: 400, what: 'bad tenant', ...json({ tenant: 'a b', name: 'ci', scopes: ['admin'] }) },
  ],
  'GET /api-keys': () => [
    { status: 200, what: 'every key', path: '/api-keys' },
    { status: 200, what: "a tenant's", path: '/api-keys?tenant=prism' },
    { status: 200, what: "a tenant admin: its tenant's", path: '/api-keys', bearer: keys.tenantAdmin },
    {
      status: 403,
      what: "a tenant admin asking for another tenant's",
      path: '/api-keys?tenant=prism-other',
      bearer: keys.tenantAdmin,
    },
    { status: 400, what: 'empty tenant', path: '/api-keys?tenant=' },
  ],
  'DELETE /api-keys/{id}': () => [
    {
      status: 404,
      what: "a tenant admin, another tenant's key (as an unknown one)",
      path: `/api-keys/${ids.otherTenantKey}`,
      bearer: keys.tenantAdmin,
    },
    {
      status: 403,
      what: "a tenant admin, its tenant's operator key",
      path: `/api-keys/${ids.operatorKey}`,
      bearer: keys.tenantAdmin,
    },
    { status: 200, what: 'revokes', path: `/api-keys/${ids.keyToRevoke}` },
    { status: 400, what: 'malformed id', path: '/api-keys/nope' },
    { status: 404, what: 'unknown id', path: `/api-keys/${ids.unknown}` },
    notJson(`/api-keys/${ids.unknown}`),
  ],
  'POST /webhooks': () => [
    {
      status: 201,
      what: 'creates',
      ...json({ url: receiverUrl, events: ['task.completed', 'task.failed'] }),
    },
    {
      status: 201,
      what: "an operator, another tenant's, for one task type",
      ...json({
        tenant: 'prism-other',
        url: receiverUrl,
        events: ['task.expired'],
        task_names: ['sum_two_numbers'],
      }),
    },
    {
      status: 403,
      what: 'a tenant admin, for another tenant',
      bearer: keys.tenantAdmin,
      ...json({ tenant: 'prism-other', url: receiverUrl, events: ['task.failed'] }),
    },
    {
      status: 400,
      what: 'not an http URL',
      ...json({ url: 'ftp://example.com/x', events: ['task.failed'] }),
    },
    { status: 400, what: 'no events', ...json({ url: receiverUrl, events: [] }) },
    { status: 400, what: 'an unknown event', ...json({ url: receiverUrl, events: ['task.done'] }) },
    {
      status: 400,
      what: 'an unknown task type',
      ...json({ url: receiverUrl, events: ['task.failed'], task_names: ['nope'] }),
    },
    notJson('/webhooks'),
  ],
  'GET /webhooks': () => [
    { status: 200, what: 'every webhook', path: '/webhooks' },
    { status: 200, what: "a tenant's", path: '/webhooks?tenant=prism' },
    {
      status: 403,
      what: "a tenant admin asking for another tenant's",
      path: '/webhooks?tenant=prism-other',
      bearer: keys.tenantAdmin,
    },
    { status: 400, what: 'empty tenant', path: '/webhooks?tenant=' },
  ],
  'GET /webhooks/{id}': () => [
    { status: 200, what: 'a webhook', path: `/webhooks/${ids.webhook}` },
    { status: 400, what: 'malformed id', path: '/webhooks/nope' },
    { status: 404, what: 'unknown id', path: `/webhooks/${ids.unknown}` },
  ],
  'DELETE /webhooks/{id}': () => [
    { status: 200, what: 'deletes', path: `/webhooks/${ids.webhookToDelete}` },
    { status: 400, what: 'malformed id', path: '/webhooks/nope' },
    { status: 404, what: 'unknown id', path: `/webhooks/${ids.unknown}` },
  ],
  'POST /webhooks/{id}/test': () => [
    { status: 200, what: 'sends a test event', path: `/webhooks/${ids.webhook}/test` },
    { status: 400, what: 'malformed id', path: '/webhooks/nope/test' },
    { status: 404, what: 'unknown id', path: `/webhooks/${ids.unknown}/test` },
  ],
  'GET /webhooks/{id}/deliveries': () => [
    { status: 200, what: 'its deliveries', path: `/webhooks/${ids.webhook}/deliveries` },
    {
      status: 200,
      what: 'pending ones, at most 5',
      path: `/webhooks/${ids.webhook}/deliveries?status=pending&limit=5`,
    },
    { status: 400, what: 'unknown status', path: `/webhooks/${ids.webhook}/deliveries?status=sent` },
    { status: 400, what: 'limit out of range', path: `/webhooks/${ids.webhook}/deliveries?limit=0` },
    { status: 404, what: 'unknown id', path: `/webhooks/${ids.unknown}/deliveries` },
  ],
  'POST /webhooks/task-secret': () => [
    { status: 200, what: "the caller's tenant", ...json({}) },
    { status: 200, what: "an operator, another tenant's", ...json({ tenant: 'prism-other' }) },
    {
      status: 403,
      what: 'a tenant admin, another tenant',
      bearer: keys.tenantAdmin,
      ...json({ tenant: 'prism-other' }),
    },
    { status: 400, what: 'bad tenant', ...json({ tenant: 'a b' }) },
    notJson('/webhooks/task-secret'),
  ],
  'POST /webhooks/{id}/deliveries/{delivery_id}/redeliver': () => [
    {
      status: 200,
      what: 'due again now',
      path: `/webhooks/${ids.webhook}/deliveries/${ids.delivery}/redeliver`,
    },
    {
      status: 400,
      what: 'malformed delivery id',
      path: `/webhooks/${ids.webhook}/deliveries/nope/redeliver`,
    },
    {
      status: 404,
      what: 'unknown delivery',
      path: `/webhooks/${ids.webhook}/deliveries/${ids.unknown}/redeliver`,
    },
  ],
  'POST /schedules': () => {
    const nightly = {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      cron: '0 2 * * *',
      timezone: 'Europe/Paris',
      key: 'prism-nightly',
    };
    return [
      { status: 201, what: 'creates, with a key', ...json(nightly) },
      {
        status: 200,
        what: 'the same key again: updates that schedule',
        ...json({ ...nightly, cron: '0 3 * * *' }),
      },
      {
        status: 201,
        what: 'seconds, UTC, every missed tick, run options',
        ...json({
          name: 'find_longest_consecutive_letters',
          input: { string: 'aab' },
          cron: '*/10 * * * * *',
          catch_up: 'all',
          priority: 5,
          ttl_ms: 60_000,
        }),
      },
      { status: 400, what: 'a malformed cron', ...json({ ...nightly, key: undefined, cron: '0 25 * * *' }) },
      {
        status: 400,
        what: 'a cron firing too often',
        ...json({ ...nightly, key: undefined, cron: '* * * * * *' }),
      },
      {
        status: 400,
        what: 'not an IANA zone',
        ...json({ ...nightly, key: undefined, timezone: 'Mars/Olympus' }),
      },
      { status: 400, what: 'an unknown task type', ...json({ ...nightly, key: undefined, name: 'nope' }) },
      { status: 400, what: 'bad parameters', ...json({ ...nightly, key: undefined, input: { a: 'x' } }) },
      { status: 400, what: 'an unknown field', ...json({ ...nightly, x: 1 }) },
      notJson('/schedules'),
    ];
  },
  'GET /schedules': () => [
    { status: 200, what: 'a page', path: '/schedules?limit=1' },
    { status: 200, what: 'after a cursor', path: `/schedules?cursor=${ids.schedule}` },
    { status: 400, what: 'limit out of range', path: '/schedules?limit=0' },
    { status: 400, what: 'a cursor this API did not give', path: `/schedules?cursor=${ids.unknown}` },
  ],
  'GET /schedules/{id}': () => [
    { status: 200, what: 'with its next fires and runs', path: `/schedules/${ids.schedule}` },
    { status: 400, what: 'malformed id', path: '/schedules/nope' },
    { status: 404, what: 'unknown id', path: `/schedules/${ids.unknown}` },
  ],
  'PATCH /schedules/{id}': () => [
    { status: 200, what: 'pauses', path: `/schedules/${ids.schedule}`, ...json({ paused: true }) },
    {
      status: 200,
      what: 'a new cron, zone and input, resumed',
      path: `/schedules/${ids.schedule}`,
      ...json({ cron: '30 3 * * *', timezone: 'America/New_York', input: { a: 2, b: 3 }, paused: false }),
    },
    { status: 400, what: 'a malformed cron', path: `/schedules/${ids.schedule}`, ...json({ cron: 'x' }) },
    {
      status: 400,
      what: 'bad parameters',
      path: `/schedules/${ids.schedule}`,
      ...json({ input: { a: 'x' } }),
    },
    { status: 400, what: 'an unknown field', path: `/schedules/${ids.schedule}`, ...json({ name: 'x' }) },
    { status: 400, what: 'malformed id', path: '/schedules/nope', ...json({ paused: true }) },
    { status: 404, what: 'unknown id', path: `/schedules/${ids.unknown}`, ...json({ paused: true }) },
    notJson(`/schedules/${ids.schedule}`),
  ],
  'DELETE /schedules/{id}': () => [
    { status: 200, what: 'deletes', path: `/schedules/${ids.scheduleToDelete}` },
    { status: 400, what: 'malformed id', path: '/schedules/nope' },
    { status: 404, what: 'unknown id (and one deleted)', path: `/schedules/${ids.scheduleToDelete}` },
    notJson(`/schedules/${ids.unknown}`),
  ],
  'GET /tasks/{id}/events': () => [
    { status: 200, what: 'a finished task: its state, then the end', path: `/tasks/${ids.finished}/events` },
    {
      status: 200,
      what: 'resumed after its version',
      path: `/tasks/${ids.finished}/events`,
      headers: { 'last-event-id': '0' },
    },
    { status: 400, what: 'malformed id', path: '/tasks/nope/events' },
    { status: 404, what: 'unknown id', path: `/tasks/${ids.unknown}/events` },
  ],
  'GET /healthz': () => [{ status: 200, what: 'alive', key: 'none' }],
  'GET /readyz': () => [{ status: 200, what: 'ready', key: 'none' }],
  'GET /openapi.json': () => [{ status: 200, what: 'the document', key: 'none' }],
  'GET /whoami': () => [{ status: 200, what: 'the key with every scope' }],
  'GET /stats/throughput': () => [{ status: 200, what: 'the last hour' }],
  'POST /tokens/{token}/complete': () => [
    {
      status: 200,
      what: 'completes a waiting token',
      path: `/tokens/${ids.token}/complete`,
      ...json({ output: { approved: true } }),
    },
    {
      status: 409,
      what: 'completed already',
      path: `/tokens/${ids.tokenCompleted}/complete`,
      ...json({ output: 1 }),
    },
    { status: 404, what: 'unknown token', path: `/tokens/${ids.unknown}/complete`, ...json({ output: 1 }) },
    notJson(`/tokens/${ids.token}/complete`),
  ],
  'POST /token-callbacks/{secret}': () => [
    {
      status: 200,
      what: 'completes by its callback URL, no key',
      key: 'none',
      path: `/token-callbacks/${ids.callbackSecret}`,
      ...json({ output: 'done' }),
    },
    {
      status: 404,
      what: 'a guessed secret',
      key: 'none',
      path: `/token-callbacks/${'d'.repeat(43)}`,
      ...json({ output: 1 }),
    },
    notJson(`/token-callbacks/${ids.callbackSecret}`),
  ],
  'GET /usage': () => [
    { status: 200, what: 'by day, the last 30 days (the default)', path: '/usage' },
    {
      status: 200,
      what: 'by model, a range of dates',
      path: '/usage?from=2026-11-01&to=2026-12-31&group_by=model',
    },
    {
      status: 200,
      what: "an operator: every tenant's, by tenant",
      path: '/usage?tenant=*&group_by=tenant&from=2026-01-01T00:00:00Z',
    },
    {
      status: 403,
      what: "a key without operator: another tenant's",
      path: '/usage?tenant=prism-other',
      bearer: keys.tenantAdmin,
    },
    { status: 400, what: 'no such date', path: '/usage?from=2026-02-31' },
    { status: 400, what: 'a year PostgreSQL has not', path: '/usage?from=0000-01-01&to=0000-06-01' },
    {
      status: 400,
      what: 'a year an ISO date-time cannot end in',
      path: '/usage?from=9999-12-01&to=9999-12-31',
    },
    { status: 400, what: 'from after to', path: '/usage?from=2026-12-02&to=2026-12-01' },
    { status: 400, what: 'an unknown group_by', path: '/usage?group_by=week' },
    { status: 400, what: 'a range over 366 days', path: '/usage?from=2024-01-01&to=2026-01-01' },
  ],
  'GET /metrics': () => [
    { status: 200, what: 'with METRICS_TOKEN', key: 'none', bearer: METRICS_TOKEN },
    { status: 401, what: 'an API key is not the metrics token', key: 'admin' },
  ],
};

/**
 * Statuses documented but not sent here, each with its reason. Everything else documented must be
 * answered by some case.
 */
const SKIPPED: Record<string, Record<number, string>> = {};

/** The example path of an operation: its path parameters filled with ids that exist. */
function samplePath(path: string): string {
  return path
    .replace('{id}', path.startsWith('/api-keys') ? ids.unknown : ids.pending)
    .replace('{delivery_id}', ids.unknown)
    .replace('{tenant}', 'prism')
    .replace('{name}', 'sum_two_numbers')
    .replace('{token}', ids.unknown)
    .replace('{secret}', 'e'.repeat(43));
}

/** What every operation of its kind gets: a bad key, a key without its scope, bodies too large or not JSON. */
function commonCases(op: Operation): Case[] {
  const documented = new Set(Object.keys(op.responses).map(Number));
  const cases: Case[] = [];
  if (documented.has(401)) {
    cases.push({ status: 401, what: 'no key', key: 'none' });
    cases.push({ status: 401, what: 'malformed key', key: 'malformed' });
  }
  if (documented.has(403)) cases.push({ status: 403, what: `a key without ${scopeOf(op)}`, key: 'lacking' });
  if (documented.has(413)) cases.push({ status: 413, what: 'a body over the limit', ...json({ big }) });
  if (documented.has(415))
    cases.push({ status: 415, what: 'text/plain', raw: 'hello', contentType: 'text/plain' });
  return cases;
}

interface Outcome {
  operation: string;
  what: string;
  status: number;
  violations: { location: string[]; severity: string; message: string }[];
}
const outcomes: Outcome[] = [];
const problems: string[] = [];

/** Sends one case through Prism; records its status and Prism's response violations. */
async function send(
  operation: string,
  method: string,
  path: string,
  op: Operation,
  c: Case,
  timeoutMs = 5000,
): Promise<void> {
  const headers: Record<string, string> = { ...c.headers };
  const key = c.key ?? 'admin';
  if (key === 'admin' || key === 'limited') headers.authorization = `Bearer ${keys[key]}`;
  if (key === 'malformed') headers.authorization = 'Bearer not-a-key';
  if (c.bearer) headers.authorization = `Bearer ${c.bearer}`;
  if (key === 'lacking') {
    const scope = scopeOf(op);
    if (!scope) throw new Error(`${operation}: no scope in its 403`);
    headers.authorization = `Bearer ${keys[`without:${scope}`]}`;
  }
  let body: string | undefined;
  if (c.raw !== undefined) {
    body = c.raw;
    headers['content-type'] = c.contentType ?? 'application/json';
  } else if (c.body !== undefined) {
    body = JSON.stringify(c.body);
    headers['content-type'] = 'application/json';
  }
  const label = `${operation} (${c.what})`;
  const started = performance.now();
  let res: Response;
  let text = '';
  try {
    res = await fetch(`${c.direct ? server.url : base}${c.path ?? samplePath(path)}`, {
      method: c.method ?? method,
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await res.text();
  } catch (error) {
    problems.push(`${label}: no answer (${String(error)})`);
    return;
  } finally {
    if (process.env.PRISM_TRACE) console.log(label, Math.round(performance.now() - started), 'ms');
  }
  const header = res.headers.get('sl-violations');
  const violations = (header ? JSON.parse(header) : []) as Outcome['violations'];
  outcomes.push({ operation, what: c.what, status: res.status, violations });
  if (res.status !== c.status) problems.push(`${label}: answered ${res.status}, expected ${c.status}`);
  if (!(String(res.status) in op.responses)) problems.push(`${label}: ${res.status} is not documented`);
  for (const v of violations.filter((v) => v.location[0] === 'response'))
    problems.push(`${label}: Prism: ${v.location.join('.')}: ${v.message}`);
  if (c.direct && !isError(text, res.status)) problems.push(`${label}: not an Error body: ${text}`);
}

/** The Error shape: {error, code, status, issues?}. */
function isError(text: string, status: number): boolean {
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    return typeof body.error === 'string' && typeof body.code === 'string' && body.status === status;
  } catch {
    return false;
  }
}

const operationsOf = (d: Doc) =>
  Object.entries(d.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      op,
    })),
  );

/** The first case of an operation that a key with every scope answers with success. */
function successCase(key: string): Case {
  const found = (CASES[key]?.() ?? []).find((c) => c.status < 300 && !c.direct);
  if (!found) throw new Error(`${key}: no success case`);
  return found;
}

describe('prism proxy in front of the server', () => {
  it('has cases for every operation of the document, and none for an operation it lacks', () => {
    const documented = operationsOf(doc).map((o) => o.key);
    expect(documented.filter((key) => !(key in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((key) => !documented.includes(key))).toEqual([]);
  });

  it('finds no response violation and no undocumented status, in success and error cases', async () => {
    problems.length = 0;
    for (const { key, method, path, op } of operationsOf(doc)) {
      for (const c of [...(CASES[key]?.() ?? []), ...commonCases(op)]) await send(key, method, path, op, c);
    }
    expect(problems).toEqual([]);
  }, 30_000);

  it('finds none in the 429 of a key over its rate limit', async () => {
    problems.length = 0;
    // Spend the budget of the limited key on the server itself.
    for (let i = 0; i < RATE_LIMIT; i++) {
      const res = await direct('GET', '/task-types', keys.limited);
      await res.arrayBuffer();
      if (res.status === 429) break;
    }
    for (const { key, method, path, op } of operationsOf(doc)) {
      // The open routes count against the client IP (the test below), not against a key.
      if (!op.responses['429'] || key === 'GET /openapi.json' || key === 'POST /token-callbacks/{secret}')
        continue;
      await send(key, method, path, op, {
        ...successCase(key),
        key: 'limited',
        status: 429,
        what: 'over the limit',
      });
    }
    expect(problems).toEqual([]);
  }, 30_000);

  it('finds none in the 503s of PostgreSQL down', async () => {
    problems.length = 0;
    // One request per outage, with a key the server has not cached: the lookup needs PostgreSQL.
    // (Within one outage, the driver's reconnection backoff makes later requests wait for seconds.)
    for (const { key, method, path, op } of operationsOf(doc)) {
      if (!op.responses['503']) continue;
      const bearer = await freshKey();
      await pg.down();
      try {
        await send(key, method, path, op, {
          ...successCase(key),
          bearer,
          status: 503,
          what: 'PostgreSQL down',
        });
      } finally {
        await pg.up();
      }
      await waitFor(async () => ((await direct('GET', '/readyz')).status === 200 ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: 'PostgreSQL back',
      });
    }
    expect(problems).toEqual([]);
  }, 40_000);

  it('finds none in the 429 of a client IP over its limit (on the open /openapi.json)', async () => {
    problems.length = 0;
    for (let i = 0; i < RATE_LIMIT; i++) {
      const res = await direct('GET', '/queue'); // no key: counted per client IP
      await res.arrayBuffer();
      if (res.status === 429) break;
    }
    const op = doc.paths['/openapi.json']?.get as Operation;
    await send('GET /openapi.json', 'GET', '/openapi.json', op, {
      status: 429,
      key: 'none',
      what: 'over the limit',
    });
    const callback = '/token-callbacks/{secret}';
    await send(`POST ${callback}`, 'POST', callback, doc.paths[callback]?.post as Operation, {
      ...successCase(`POST ${callback}`),
      status: 429,
      what: 'over the limit',
    });
    expect(problems).toEqual([]);
  });

  it('answers a method a path does not take with 405 and Allow, and an unknown path with 404', async () => {
    const wrong = await fetch(`${base}/queue/pause`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(isError(await wrong.text(), 405)).toBe(true);
    const unknown = await fetch(`${base}/no-such-route`, { method: 'DELETE' });
    expect(unknown.status).toBe(404);
    expect(isError(await unknown.text(), 404)).toBe(true);
  });

  it('has exercised every status each operation documents, but those skipped for a reason', () => {
    const missing: string[] = [];
    for (const { key, op } of operationsOf(doc)) {
      const seen = new Set(outcomes.filter((o) => o.operation === key).map((o) => o.status));
      for (const status of Object.keys(op.responses).map(Number)) {
        if (!seen.has(status) && !SKIPPED[key]?.[status]) missing.push(`${key} ${status}`);
      }
    }
    expect(missing).toEqual([]);
    // Prism did look: the bad requests sent on purpose carry its request violations.
    // (Not /metrics: its token is optional in the document, since it is open unless METRICS_TOKEN is set.)
    const noKey = outcomes.filter((o) => o.what === 'no key' && o.operation !== 'GET /metrics');
    expect(noKey.length).toBeGreaterThan(10);
    for (const o of noKey)
      expect(
        o.violations.some((v) => v.location[0] === 'request'),
        o.operation,
      ).toBe(true);
  });
});
