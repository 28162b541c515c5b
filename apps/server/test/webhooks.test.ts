/**
 * Completion webhooks (issue 20), end to end on two server processes and two worker processes
 * (either queue mode): receivers written here from the Standard Webhooks spec (their own HMAC
 * code), one that fails 3 times and then succeeds, one that is down for the whole test (kept as
 * failed, then redelivered by hand), one that redirects (not followed); tenants kept apart; and
 * the server-side request forgery refused at creation on a server without WEBHOOK_ALLOW_PRIVATE.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type ApiKeyScope, ApiKeyStore, createDb, type DbClient } from '@tasker/db';
import { createLogger, loadEnv } from '@tasker/engine';
import { type AppProcess, createTestEnv, freePort, spawnApp, type TestEnv, waitFor } from '@tasker/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TaskerServer } from '../src/server.ts';

/** Short waits between attempts: 5 attempts in about 1.5 s. */
const SCHEDULE = '200ms,300ms,400ms,500ms';
const ATTEMPTS = 5;

let env: TestEnv;
let db: DbClient;
const servers: AppProcess[] = [];
const workers: AppProcess[] = [];
let strict: TaskerServer;
const keys = {} as Record<
  'adminA' | 'adminB' | 'writerA' | 'writerB' | 'readerA' | 'readerB' | 'operator',
  string
>;

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver on 127.0.0.1 that records every request and answers with `answer(request, count of its id)`. */
class Receiver {
  readonly received: Received[] = [];
  private server: Server | undefined;
  url = '';

  constructor(
    private readonly answer: (
      r: Received,
      seen: number,
    ) => { status: number; headers?: Record<string, string> },
  ) {}

  async listen(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
        this.received.push(r);
        const seen = this.received.filter((x) => x.headers['webhook-id'] === r.headers['webhook-id']).length;
        const { status, headers } = this.answer(r, seen);
        res.writeHead(status, headers).end();
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(port, '127.0.0.1', resolve));
    const bound = this.server.address();
    this.url = `http://127.0.0.1:${typeof bound === 'object' && bound ? bound.port : port}/hook`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  ofTask(taskId: string): Received[] {
    return this.received.filter(
      (r) => (JSON.parse(r.body) as { task?: { id?: string } }).task?.id === taskId,
    );
  }
}

/**
 * Standard Webhooks verification, written from the spec (not Tasker's signing code): the secret's
 * bytes are the base64 after `whsec_`; the signed content is `id.timestamp.body`; the header holds
 * space-separated `v1,<base64 HMAC-SHA256>` signatures, one of which must match; the timestamp must
 * be within 5 minutes of now.
 */
function verify(secret: string, r: Received): boolean {
  const id = r.headers['webhook-id'];
  const timestamp = r.headers['webhook-timestamp'];
  const signatures = r.headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const key = Buffer.from(secret.split('_')[1] ?? '', 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${r.body}`).digest();
  return signatures.split(' ').some((signature) => {
    const [version, value] = signature.split(',');
    if (version !== 'v1' || value === undefined) return false;
    const given = Buffer.from(value, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
  body: any;
}

async function call(
  base: string,
  method: string,
  path: string,
  bearer: string,
  body?: unknown,
): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** The servers' URLs: calls alternate between the two processes. */
const urls = () => servers.map((s) => s.url as string);
let turn = 0;
const next = () => {
  const all = urls();
  return all[turn++ % all.length] as string;
};

async function createWebhook(bearer: string, body: object): Promise<{ id: string; secret: string }> {
  const res = await call(next(), 'POST', '/webhooks', bearer, body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function submit(bearer: string, body: object = {}): Promise<string> {
  const res = await call(next(), 'POST', '/tasks', bearer, {
    name: 'sum_two_numbers',
    input: { a: 2, b: 3 },
    ...body,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function deliveries(bearer: string, webhookId: string, query = ''): Promise<Answer['body'][]> {
  const res = await call(next(), 'GET', `/webhooks/${webhookId}/deliveries${query}`, bearer);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.deliveries;
}

beforeAll(async () => {
  env = createTestEnv({
    AUTH_MODE: 'required',
    WEBHOOK_ALLOW_PRIVATE: '1',
    WEBHOOK_RETRY_SCHEDULE: SCHEDULE,
    WEBHOOK_INTERVAL_MS: '50',
    WEBHOOK_TIMEOUT_MS: '2000',
  });
  // The first server migrates; the others find nothing to do.
  servers.push(await spawnApp('server', env.vars));
  servers.push(await spawnApp('server', env.vars));
  workers.push(await spawnApp('worker', env.vars), await spawnApp('worker', env.vars));
  db = createDb(env.databaseUrl, { max: 2 });
  const store = new ApiKeyStore(db.db);
  const key = async (tenantId: string, scopes: ApiKeyScope[]) =>
    (await store.create({ tenantId, name: 'webhooks test', scopes, expiresAt: null })).key;
  keys.adminA = await key('wh-a', ['admin', 'tasks:read']);
  keys.adminB = await key('wh-b', ['admin']);
  keys.writerA = await key('wh-a', ['tasks:write', 'tasks:read']);
  keys.writerB = await key('wh-b', ['tasks:write']);
  keys.readerA = await key('wh-a', ['tasks:read']);
  keys.readerB = await key('wh-b', ['tasks:read']);
  keys.operator = await key('ops', ['operator']);
  // A server of the same database without WEBHOOK_ALLOW_PRIVATE: the forgery checks.
  const vars = { ...env.vars, WEBHOOK_ALLOW_PRIVATE: '0' };
  const parsed = loadEnv(vars);
  strict = await startServer(parsed, createLogger(parsed, 'test-strict'));
}, 60_000);

afterAll(async () => {
  await strict?.close();
  await Promise.all([...servers, ...workers].map((p) => p.stop()));
  await db?.close();
  await env?.cleanup();
});

describe('completion webhooks, two servers and two workers', () => {
  it('signs every delivery so that a Standard Webhooks receiver verifies it, with the task record', async () => {
    const good = await new Receiver(() => ({ status: 204 })).listen();
    try {
      const hook = await createWebhook(keys.adminA, {
        url: good.url,
        events: ['task.completed', 'task.cancelled'],
      });
      expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
      // The secret is shown once: never in a read.
      const read = await call(next(), 'GET', `/webhooks/${hook.id}`, keys.adminA);
      expect(read.status).toBe(200);
      expect(read.body.secret).toBeUndefined();
      expect(JSON.stringify((await call(next(), 'GET', '/webhooks', keys.adminA)).body)).not.toContain(
        'whsec_',
      );

      const ids = await Promise.all(Array.from({ length: 10 }, () => submit(keys.writerA)));
      const cancelled = await submit(keys.writerA, { delay_ms: 3_600_000 });
      expect((await call(next(), 'POST', `/tasks/${cancelled}/cancel`, keys.writerA)).status).toBe(200);
      await waitFor(() => good.received.length >= 11 || undefined, {
        timeoutMs: 15_000,
        what: '11 deliveries',
      });
      expect(good.received.every((r) => verify(hook.secret, r))).toBe(true);
      // A receiver with another secret, or a changed body, refuses it.
      const [first] = good.received;
      if (!first) throw new Error('nothing received');
      expect(verify('whsec_c29tZXRoaW5nIGVsc2UgZW50aXJlbHkhIQ==', first)).toBe(false);
      expect(verify(hook.secret, { ...first, body: `${first.body} ` })).toBe(false);

      for (const id of ids) {
        const [delivery] = good.ofTask(id);
        if (!delivery) throw new Error(`no delivery for ${id}`);
        const body = JSON.parse(delivery.body);
        expect(body.event).toBe('task.completed');
        // The typed task record, as GET /tasks/{id} answers it but for its durable steps and its
        // children (which only GET reads; these tasks have none).
        const task = await call(next(), 'GET', `/tasks/${id}`, keys.readerA);
        const { steps, children, childTasks, ...record } = task.body;
        expect(steps).toEqual([]);
        expect(children).toMatchObject({ total: 0 });
        expect(childTasks).toEqual([]);
        expect(body.task).toEqual(record);
        expect(body.task.output).toBe(5);
      }
      expect(JSON.parse(good.ofTask(cancelled)[0]?.body ?? '{}').event).toBe('task.cancelled');
      // Each delivery once (a 2xx ends it), each with its own id.
      expect(new Set(good.received.map((r) => r.headers['webhook-id'])).size).toBe(good.received.length);
      const listed = await deliveries(keys.adminA, hook.id);
      expect(listed).toHaveLength(11);
      expect(listed.every((d) => d.status === 'delivered' && d.attempts === 1 && d.log.length === 1)).toBe(
        true,
      );
      expect((await call(next(), 'DELETE', `/webhooks/${hook.id}`, keys.adminA)).status).toBe(200);
    } finally {
      await good.close();
    }
  }, 40_000);

  it('retries a receiver that fails 3 times with the same id and bytes, then it is delivered', async () => {
    const flaky = await new Receiver((_, seen) => ({ status: seen <= 3 ? 500 : 200 })).listen();
    try {
      const hook = await createWebhook(keys.adminA, { url: flaky.url, events: ['task.completed'] });
      const id = await submit(keys.writerA);
      await waitFor(() => flaky.ofTask(id).length >= 4 || undefined, {
        timeoutMs: 15_000,
        what: '4 attempts',
      });
      const attempts = flaky.ofTask(id);
      expect(new Set(attempts.map((r) => r.headers['webhook-id'])).size).toBe(1);
      expect(new Set(attempts.map((r) => r.body)).size).toBe(1);
      expect(attempts.every((r) => verify(hook.secret, r))).toBe(true);
      // The waits of the schedule (200, 300, 400 ms), give or take a sender's pass.
      const gaps = attempts.slice(1).map((r, i) => r.at - (attempts[i]?.at ?? 0));
      expect(gaps.every((gap, i) => gap >= ([200, 300, 400][i] ?? 0) - 20)).toBe(true);
      const [delivery] = await waitFor(
        async () => {
          const list = await deliveries(keys.adminA, hook.id);
          return list[0]?.status === 'delivered' ? list : undefined;
        },
        { what: 'delivered' },
      );
      expect(delivery.attempts).toBe(4);
      expect(delivery.log.map((a: { status: number }) => a.status)).toEqual([500, 500, 500, 200]);
      expect(delivery.id).toBe(attempts[0]?.headers['webhook-id']);
      await new Promise((r) => setTimeout(r, 600));
      expect(flaky.ofTask(id)).toHaveLength(4);
    } finally {
      await flaky.close();
    }
  }, 30_000);

  it('keeps a delivery to a receiver down for the whole schedule as failed; redelivered by hand, it arrives', async () => {
    const port = await freePort(); // nothing listens there
    const hook = await createWebhook(keys.adminA, {
      url: `http://127.0.0.1:${port}/hook`,
      events: ['task.completed'],
    });
    const id = await submit(keys.writerA);
    const [failed] = await waitFor(
      async () => {
        const list = await deliveries(keys.adminA, hook.id, '?status=failed');
        return list.length === 1 ? list : undefined;
      },
      { timeoutMs: 20_000, what: 'failed for good' },
    );
    expect(failed.taskId).toBe(id);
    expect(failed.attempts).toBe(ATTEMPTS);
    expect(failed.log).toHaveLength(ATTEMPTS);
    expect(
      failed.log.every((a: { status: number | null; error: string }) => a.status === null && a.error),
    ).toBe(true);
    expect(failed.nextAttemptAt).toBeNull();

    // The receiver comes up; an operator sends it again by hand: the same id and body.
    const back = await new Receiver(() => ({ status: 200 })).listen(port);
    try {
      const redelivered = await call(
        next(),
        'POST',
        `/webhooks/${hook.id}/deliveries/${failed.id}/redeliver`,
        keys.adminA,
      );
      expect(redelivered.status).toBe(200);
      expect(redelivered.body.status).toBe('pending');
      await waitFor(() => back.ofTask(id).length >= 1 || undefined, { what: 'the redelivery' });
      const [arrived] = back.ofTask(id);
      expect(arrived?.headers['webhook-id']).toBe(failed.id);
      expect(verify(hook.secret, arrived as Received)).toBe(true);
      const done = await waitFor(
        async () => (await deliveries(keys.adminA, hook.id)).find((d) => d.status === 'delivered'),
        { what: 'delivered' },
      );
      expect(done.log).toHaveLength(ATTEMPTS + 1);
    } finally {
      await back.close();
    }
  }, 40_000);

  it('holds only its own deliveries when a receiver never answers (WEBHOOK_TIMEOUT_MS 2 s)', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const bound = silent.address();
    const silentUrl = `http://127.0.0.1:${typeof bound === 'object' && bound ? bound.port : 0}/hook`;
    const fast = await new Receiver(() => ({ status: 200 })).listen();
    try {
      const hung = await createWebhook(keys.adminA, { url: silentUrl, events: ['task.completed'] });
      const quick = await createWebhook(keys.adminA, { url: fast.url, events: ['task.completed'] });
      const first = await submit(keys.writerA);
      await waitFor(() => fast.ofTask(first).length === 1 || undefined, { what: 'the first delivery' });
      // The silent receiver still holds its attempt for the first task: the second one's delivery
      // to the fast receiver does not wait for it.
      const started = Date.now();
      const second = await submit(keys.writerA);
      await waitFor(() => fast.ofTask(second).length === 1 || undefined, { what: 'the second delivery' });
      expect(Date.now() - started).toBeLessThan(1500);
      const stuck = await waitFor(
        async () => (await deliveries(keys.adminA, hung.id)).find((d) => d.attempts >= 1),
        { what: 'the silent attempt recorded' },
      );
      expect(stuck.lastError).toContain('no answer within 2000 ms');
      for (const hook of [hung, quick]) await call(next(), 'DELETE', `/webhooks/${hook.id}`, keys.adminA);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
      await fast.close();
    }
  }, 30_000);

  it('follows no redirect: a 3xx is a failed attempt, and the target is never called', async () => {
    const target = await new Receiver(() => ({ status: 200 })).listen();
    const redirecting = await new Receiver(() => ({
      status: 307,
      headers: { location: target.url },
    })).listen();
    try {
      const hook = await createWebhook(keys.adminA, { url: redirecting.url, events: ['task.completed'] });
      await submit(keys.writerA);
      const failed = await waitFor(
        async () => (await deliveries(keys.adminA, hook.id, '?status=failed'))[0],
        { timeoutMs: 20_000, what: 'failed' },
      );
      expect(failed.lastStatus).toBe(307);
      expect(failed.lastError).toContain('not followed');
      expect(target.received).toHaveLength(0);
      await call(next(), 'DELETE', `/webhooks/${hook.id}`, keys.adminA);
    } finally {
      await Promise.all([target.close(), redirecting.close()]);
    }
  }, 30_000);

  it('keeps tenants apart, filters by event and task type, and checks every field', async () => {
    const a = await new Receiver(() => ({ status: 200 })).listen();
    const b = await new Receiver(() => ({ status: 200 })).listen();
    try {
      const hookA = await createWebhook(keys.adminA, { url: a.url, events: ['task.completed'] });
      const hookB = await createWebhook(keys.adminB, {
        url: b.url,
        events: ['task.completed'],
        task_names: ['find_longest_consecutive_letters'],
      });
      // Another tenant's webhook is unknown to an admin; an operator reaches it.
      for (const [method, path] of [
        ['GET', `/webhooks/${hookA.id}`],
        ['DELETE', `/webhooks/${hookA.id}`],
        ['GET', `/webhooks/${hookA.id}/deliveries`],
        ['POST', `/webhooks/${hookA.id}/test`],
      ] as const)
        expect((await call(next(), method, path, keys.adminB)).status, `${method} ${path}`).toBe(404);
      expect((await call(next(), 'GET', '/webhooks?tenant=wh-a', keys.adminB)).status).toBe(403);
      expect(
        (
          await call(next(), 'POST', '/webhooks', keys.adminB, {
            tenant: 'wh-a',
            url: a.url,
            events: ['task.failed'],
          })
        ).status,
      ).toBe(403);
      expect((await call(next(), 'GET', `/webhooks/${hookA.id}`, keys.operator)).status).toBe(200);
      const listB = await call(next(), 'GET', '/webhooks', keys.adminB);
      expect(listB.body.webhooks.map((w: { id: string }) => w.id)).toEqual([hookB.id]);
      // tasks:write is not admin.
      expect((await call(next(), 'GET', '/webhooks', keys.writerA)).status).toBe(403);

      const sumB = await submit(keys.writerB);
      const lettersB = (
        await call(next(), 'POST', '/tasks', keys.writerB, {
          name: 'find_longest_consecutive_letters',
          input: { string: 'aabbb' },
        })
      ).body.id as string;
      const sumA = await submit(keys.writerA);
      await waitFor(() => (b.ofTask(lettersB).length === 1 && a.ofTask(sumA).length === 1) || undefined, {
        what: 'both tenants told',
      });
      await new Promise((r) => setTimeout(r, 500));
      expect(b.received.map((r) => JSON.parse(r.body).task.id)).toEqual([lettersB]);
      expect(a.received.map((r) => JSON.parse(r.body).task.id)).toEqual([sumA]);
      expect(b.ofTask(sumB)).toHaveLength(0);

      // The test event: signed like any delivery, sent now, nothing stored.
      const tested = await call(next(), 'POST', `/webhooks/${hookA.id}/test`, keys.adminA);
      expect(tested.status).toBe(200);
      expect(tested.body).toMatchObject({ delivered: true, attempt: { status: 200, error: null } });
      const test = a.received.find((r) => JSON.parse(r.body).event === 'webhook.test');
      expect(test && verify(hookA.secret, test)).toBe(true);
      expect(test?.headers['webhook-id']).toBe(tested.body.id);

      // Bad input: a 400 naming the field, nothing stored.
      const before = (await call(next(), 'GET', '/webhooks', keys.adminA)).body.webhooks.length;
      for (const [body, field] of [
        [{ url: 'ftp://example.com/', events: ['task.failed'] }, 'url'],
        [{ url: 'not a url', events: ['task.failed'] }, 'url'],
        [{ url: a.url, events: [] }, 'events'],
        [{ url: a.url, events: ['task.done'] }, 'events'],
        [{ url: a.url }, 'events'],
        [{ events: ['task.failed'] }, 'url'],
        [{ url: a.url, events: ['task.failed'], task_names: ['nope'] }, 'task_names'],
        [{ url: a.url, events: ['task.failed'], secret: 'mine' }, 'secret'],
      ] as const) {
        const res = await call(next(), 'POST', '/webhooks', keys.adminA, body);
        expect(res.status, JSON.stringify(body)).toBe(400);
        expect(JSON.stringify(res.body), JSON.stringify(body)).toContain(field);
      }
      expect((await call(next(), 'GET', '/webhooks', keys.adminA)).body.webhooks).toHaveLength(before);
      const badQuery = await call(next(), 'GET', `/webhooks/${hookA.id}/deliveries?status=sent`, keys.adminA);
      expect(badQuery.status).toBe(400);
      expect(JSON.stringify(badQuery.body)).toContain('status');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 40_000);
});

describe("a task's own webhook_url", () => {
  it("is sent the task's final state, signed with the tenant's task secret; refused without one", async () => {
    const own = await new Receiver(() => ({ status: 200 })).listen();
    try {
      const body = { name: 'sum_two_numbers', input: { a: 1, b: 1 }, webhook_url: own.url };
      // Tenant wh-b has no task secret yet: nothing could sign it.
      const refused = await call(next(), 'POST', '/tasks', keys.writerB, body);
      expect(refused.status).toBe(400);
      expect(refused.body.issues[0].path).toBe('webhook_url');
      expect(refused.body.issues[0].message).toContain('/webhooks/task-secret');
      const rotated = await call(next(), 'POST', '/webhooks/task-secret', keys.adminB, {});
      expect(rotated.status).toBe(200);
      expect(rotated.body).toMatchObject({ tenant: 'wh-b', secret: expect.stringMatching(/^whsec_/) });
      expect(
        (await call(next(), 'POST', '/webhooks/task-secret', keys.adminB, { tenant: 'wh-a' })).status,
      ).toBe(403);

      const created = await call(next(), 'POST', '/tasks', keys.writerB, body);
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      await waitFor(() => own.ofTask(id).length >= 1 || undefined, { what: "the task's own delivery" });
      const [delivery] = own.ofTask(id);
      expect(verify(rotated.body.secret, delivery as Received)).toBe(true);
      expect(JSON.parse(delivery?.body ?? '{}')).toMatchObject({
        event: 'task.completed',
        task: { id, output: 2 },
      });
      // The task's record names its own webhook (and a task without one says null).
      const record = await call(next(), 'GET', `/tasks/${id}`, keys.readerB);
      expect(record.body.webhookUrl).toBe(own.url);
      expect(JSON.parse(delivery?.body ?? '{}').task.webhookUrl).toBe(own.url);
      const plain = await submit(keys.writerB);
      expect((await call(next(), 'GET', `/tasks/${plain}`, keys.readerB)).body.webhookUrl).toBeNull();
      // Old-style door too.
      const legacy = await call(next(), 'POST', '/run-task', keys.writerB, {
        task_name: 'sum_two_numbers',
        task_parameters: { a: 2, b: 2 },
        webhook_url: own.url,
      });
      expect(legacy.status).toBe(200);
      await waitFor(() => own.ofTask(legacy.body.task_uuid).length >= 1 || undefined, {
        what: 'run-task delivery',
      });
    } finally {
      await own.close();
    }
  }, 30_000);
});

describe('no server-side request forgery (WEBHOOK_ALLOW_PRIVATE unset)', () => {
  it("refuses a task's private webhook_url: 400 naming webhook_url, nothing stored", async () => {
    await call(strict.url, 'POST', '/webhooks/task-secret', keys.adminA, {});
    const count = async () =>
      (await call(strict.url, 'GET', '/tasks?limit=100', keys.writerA)).body.tasks.length;
    const before = await count();
    for (const url of ['http://127.0.0.1:9/', 'http://[::ffff:10.0.0.1]/', 'http://localhost/']) {
      const res = await call(strict.url, 'POST', '/tasks', keys.writerA, {
        name: 'sum_two_numbers',
        input: { a: 1, b: 1 },
        webhook_url: url,
      });
      expect(res.status, url).toBe(400);
      expect(res.body.issues?.[0]?.path, url).toBe('webhook_url');
    }
    expect(await count()).toBe(before);
  });

  it('refuses loopback, private, link-local, reserved and IPv6 forms of them, and names resolving to them: 400 naming url', async () => {
    const before = (await call(strict.url, 'GET', '/webhooks', keys.adminA)).body.webhooks.length;
    for (const url of [
      'http://127.0.0.1/hook',
      'http://127.1/hook',
      'http://2130706433/hook',
      'http://0x7f000001/hook',
      'http://0.0.0.0/',
      'http://10.1.2.3/',
      'http://172.16.0.1/',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://169.254.169.254/latest/meta-data/',
      'http://224.0.0.1/',
      'http://[::1]/',
      'http://[::]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://[64:ff9b::a00:1]/',
      'http://[2002:c0a8:101::1]/',
      'http://[fe80::1]/',
      'http://[fc00::1]/',
      'http://[fd12:3456::1]/',
      'http://[ff02::1]/',
      'http://localhost:8080/hook',
      'http://localhost./hook',
      'https://user:pass@example.com/',
    ]) {
      const res = await call(strict.url, 'POST', '/webhooks', keys.adminA, {
        url,
        events: ['task.completed'],
      });
      expect(res.status, url).toBe(400);
      expect(res.body.issues?.[0]?.path, url).toBe('url');
    }
    expect((await call(strict.url, 'GET', '/webhooks', keys.adminA)).body.webhooks).toHaveLength(before);
  });
});
