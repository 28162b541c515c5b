/**
 * Property (fast-check): the scope matrix. For a random key (any non-empty set of scopes, in one of
 * three tenants; or a revoked, expired, malformed or missing one) and every operation of
 * /openapi.json, an action aimed at another tenant's resource (its task ids, key ids, its name in a
 * path, query or body) is refused (401, 403) or answered as an unknown id (404): it never succeeds,
 * changes nothing of the other tenant's, and no answer to any route carries the other tenants' data.
 * The one exception is the design's: an operator key manages any tenant's keys and the shared queue.
 * Against a real server (AUTH_MODE=required) and worker, in the TEST_MODE queue mode.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiKeyStore, createDb, type DbClient, hashTokenSecret, WaitTokens } from '@tasker/db';
import { waitFor } from '@tasker/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createdAtOf, type Stack, startStack } from './helpers.ts';

const TENANTS = ['matrix-a', 'matrix-b', 'matrix-c'] as const;
/** A callback URL's secret nobody made: 43 random base64url characters, as a real one has. */
const guessedSecret = () => randomBytes(32).toString('base64url');
/** A payload search no task matches: a bulk action with it changes nothing. */
const NOTHING = JSON.stringify({ string: 'no task holds this' });
type Tenant = (typeof TENANTS)[number];
const SCOPES = ['tasks:write', 'tasks:read', 'admin', 'operator'] as const;
type Scope = (typeof SCOPES)[number];

/** Every non-empty set of scopes. */
const SCOPE_SETS: Scope[][] = Array.from({ length: 2 ** SCOPES.length - 1 }, (_, i) =>
  SCOPES.filter((_, bit) => (i + 1) & (1 << bit)),
);

interface Attacker {
  tenant: Tenant;
  scopes: Scope[];
  /** `live` keys have the scopes; the others must be refused with 401 whatever they ask. */
  state: 'live' | 'revoked' | 'expired' | 'malformed' | 'none';
  bearer?: string;
}

/** What each tenant owns, aimed at by the others: tasks in three states, a key, and the secrets in their inputs. */
interface Owned {
  completed: string;
  delayed: string;
  cancelled: string;
  keyId: string;
  keyPrefix: string;
  /** A bulk operation of the tenant (a cancel that matched nothing). */
  operation: string;
  schedule: string;
  webhook: string;
  /** A delivery of that webhook (its completed task's). */
  delivery: string;
  /** A string only this tenant's task inputs hold: no answer to another tenant may contain it. */
  marker: string;
  /** A wait token of its delayed task (made in the store: no handler of the catalog waits for one). */
  token: string;
}

let stack: Stack;
let db: DbClient;
let store: ApiKeyStore;
const owned = {} as Record<Tenant, Owned>;
/** Live keys by tenant and scope set (index into SCOPE_SETS). */
const pool = {} as Record<Tenant, string[]>;
const dead = {} as Record<Tenant, { revoked: string; expired: string }>;
let operations: string[] = [];
/** Target keys an operator key revoked during the run (the design lets it). */
const revokedByOperator = new Set<string>();
/** Tenants whose limits an operator key set during the run (the design lets it). */
const limitedByOperator = new Set<string>();

async function call(method: string, path: string, bearer: string | undefined, body?: unknown) {
  const headers: Record<string, string> = {};
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${stack.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  // A stream answered 200 would never end: take what came at once (the state), then close it.
  const text = res.headers.get('content-type')?.includes('event-stream')
    ? await firstChunk(res)
    : await res.text();
  return { status: res.status, text };
}

async function firstChunk(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: string[] = [];
  const deadline = Date.now() + 500;
  while (Date.now() < deadline) {
    const next = await Promise.race([
      reader.read(),
      new Promise<undefined>((resolve) =>
        setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now())),
      ),
    ]);
    if (!next || next.done) break;
    chunks.push(new TextDecoder().decode(next.value));
  }
  await reader.cancel().catch(() => {});
  return chunks.join('');
}

beforeAll(async () => {
  // Webhooks to a closed loopback port: their deliveries fail and are retried, which is all they need to do here.
  stack = await startStack({ AUTH_MODE: 'required', RATE_LIMIT_PER_MINUTE: '0', WEBHOOK_ALLOW_PRIVATE: '1' });
  db = createDb(stack.env.databaseUrl, { max: 2 });
  store = new ApiKeyStore(db.db);
  const make = async (tenantId: string, scopes: Scope[], expiresAt: Date | null = null) =>
    store.create({ tenantId, name: `matrix ${scopes.join(',')}`, scopes, expiresAt });
  for (const tenant of TENANTS) {
    pool[tenant] = [];
    for (const scopes of SCOPE_SETS) pool[tenant].push((await make(tenant, scopes)).key);
    const revoked = await make(tenant, [...SCOPES]);
    await store.revoke(revoked.info.id);
    const expired = await make(tenant, [...SCOPES], new Date(Date.now() - 1000));
    dead[tenant] = { revoked: revoked.key, expired: expired.key };
    // The tenant's own resources, made with its own key.
    const own = (await make(tenant, ['tasks:write', 'tasks:read'])).key;
    const admin = (await make(tenant, ['admin'])).key;
    const hook = await call('POST', '/webhooks', admin, {
      url: 'http://127.0.0.1:9/hook',
      events: ['task.completed'],
    });
    expect(hook.status, hook.text).toBe(201);
    const webhook = (JSON.parse(hook.text) as { id: string }).id;
    const marker = `secret-of-${tenant}-${Math.random().toString(36).slice(2, 10)}`;
    const create = async (extra: object) => {
      const res = await call('POST', '/tasks', own, {
        name: 'find_longest_consecutive_letters',
        input: { string: marker },
        ...extra,
      });
      expect(res.status, res.text).toBe(201);
      return (JSON.parse(res.text) as { id: string }).id;
    };
    const completed = await create({});
    const delayed = await create({ delay_ms: 3_600_000 });
    const cancelled = await create({ delay_ms: 3_600_000 });
    const token = randomUUID();
    await new WaitTokens(db.sql).create({
      id: token,
      tenantId: tenant,
      taskId: delayed,
      taskCreatedAt: createdAtOf(delayed),
      stepId: '$token:0',
      seq: 0,
      secretHash: hashTokenSecret(`secret-of-${token}`),
      timeoutAt: new Date(Date.now() + 3_600_000),
      result: { id: token },
      startedAt: new Date(),
    });
    expect((await call('POST', `/tasks/${cancelled}/cancel`, own)).status).toBe(200);
    const target = await make(tenant, ['tasks:read']);
    const bulk = await call('POST', '/tasks/cancel', own, { filter: { input_contains: NOTHING } });
    expect(bulk.status, bulk.text).toBe(202);
    const schedule = await call('POST', '/schedules', own, {
      name: 'sum_two_numbers',
      input: { a: 1, b: 2 },
      cron: '0 3 1 1 *',
      paused: true,
    });
    expect(schedule.status, schedule.text).toBe(201);
    owned[tenant] = {
      completed,
      delayed,
      cancelled,
      keyId: target.info.id,
      keyPrefix: target.info.prefix,
      operation: (JSON.parse(bulk.text) as { id: string }).id,
      schedule: (JSON.parse(schedule.text) as { id: string }).id,
      webhook,
      delivery: '',
      token,
      marker,
    };
    await waitFor(
      async () =>
        (JSON.parse((await call('GET', `/tasks/${completed}`, own)).text) as { status: string }).status ===
        'COMPLETED',
      { what: `${tenant}'s task to complete` },
    );
    owned[tenant].delivery = await waitFor(
      async () =>
        (
          JSON.parse((await call('GET', `/webhooks/${webhook}/deliveries`, admin)).text) as {
            deliveries: { id: string }[];
          }
        ).deliveries[0]?.id,
      { what: `${tenant}'s webhook delivery` },
    );
  }
  const doc = JSON.parse((await call('GET', '/openapi.json', undefined)).text) as {
    paths: Record<string, object>;
  };
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
}, 120_000);

afterAll(async () => {
  await db?.close();
  await stack?.close();
});

/**
 * Each operation of the document: the request it makes when aimed at `victim`'s resources, and
 * whether it names a resource of the victim (`aimed`: it must then be refused or unknown) or only
 * the caller's own (it may succeed, but must leak nothing). `across`: an operator key may do it.
 */
type Plan = {
  method: string;
  path: string;
  body?: unknown;
  aimed: boolean;
  across?: 'keys' | 'queue' | 'limits' | 'webhooks' | 'usage';
};
const PLANS: Record<string, (victim: Owned, tenant: Tenant, pick: number) => Plan> = {
  'POST /run-task': () => ({
    method: 'POST',
    path: '/run-task',
    body: { task_name: 'sum_two_numbers', task_parameters: { a: 1, b: 2 } },
    aimed: false,
  }),
  'GET /get-task-output': (v, _t, pick) => ({
    method: 'GET',
    path: `/get-task-output?task_uuid=${[v.completed, v.delayed, v.cancelled][pick % 3]}`,
    aimed: true,
  }),
  'POST /tasks': () => ({
    method: 'POST',
    path: '/tasks',
    body: { name: 'sum_two_numbers', input: { a: 1, b: 1 }, delay_ms: 3_600_000 },
    aimed: false,
  }),
  // A search for the victim's secret: a page of the caller's own tasks, none of the victim's.
  'GET /tasks': (v, _t, pick) => ({
    method: 'GET',
    path:
      pick % 2
        ? `/tasks?limit=500&input_contains=${encodeURIComponent(JSON.stringify({ string: v.marker }))}`
        : '/tasks?limit=500',
    aimed: false,
  }),
  'GET /tasks/{id}': (v, _t, pick) => ({
    method: 'GET',
    path: `/tasks/${[v.completed, v.delayed, v.cancelled][pick % 3]}`,
    aimed: true,
  }),
  'POST /tasks/{id}/cancel': (v) => ({ method: 'POST', path: `/tasks/${v.delayed}/cancel`, aimed: true }),
  'POST /tasks/{id}/retry': (v) => ({ method: 'POST', path: `/tasks/${v.cancelled}/retry`, aimed: true }),
  // Bulk actions act on the caller's own tasks only: a dry run, or a filter that matches nothing
  // (every tenant's resources must stay as they were).
  'POST /tasks/cancel': (_v, _t, pick) => ({
    method: 'POST',
    path: '/tasks/cancel',
    body:
      pick % 2 ? { filter: { status: ['PENDING'] }, dry_run: true } : { filter: { input_contains: NOTHING } },
    aimed: false,
  }),
  'POST /tasks/retry': (_v, _t, pick) => ({
    method: 'POST',
    path: '/tasks/retry',
    body:
      pick % 2
        ? { filter: { status: ['CANCELLED'] }, dry_run: true }
        : { filter: { input_contains: NOTHING } },
    aimed: false,
  }),
  'GET /operations/{id}': (v) => ({ method: 'GET', path: `/operations/${v.operation}`, aimed: true }),
  'POST /tasks/batch': () => ({
    method: 'POST',
    path: '/tasks/batch',
    body: { tasks: [{ name: 'sum_two_numbers', input: { a: 1, b: 1 }, delay_ms: 3_600_000 }] },
    aimed: false,
  }),
  // Schedules: made in the caller's own tenant (paused), or the victim's read, changed or deleted.
  'POST /schedules': () => ({
    method: 'POST',
    path: '/schedules',
    body: { name: 'sum_two_numbers', input: { a: 1, b: 1 }, cron: '0 4 1 1 *', paused: true },
    aimed: false,
  }),
  'GET /schedules': () => ({ method: 'GET', path: '/schedules?limit=200', aimed: false }),
  'GET /schedules/{id}': (v) => ({ method: 'GET', path: `/schedules/${v.schedule}`, aimed: true }),
  'PATCH /schedules/{id}': (v, _t, pick) => ({
    method: 'PATCH',
    path: `/schedules/${v.schedule}`,
    body: pick % 2 ? { paused: false } : { cron: '0 5 1 1 *' },
    aimed: true,
  }),
  'DELETE /schedules/{id}': (v) => ({ method: 'DELETE', path: `/schedules/${v.schedule}`, aimed: true }),
  // Webhooks: a tenant's admin's, or an operator's across tenants.
  'POST /webhooks': (_v, tenant, pick) => ({
    method: 'POST',
    path: '/webhooks',
    body: { url: 'http://127.0.0.1:9/other', events: ['task.failed'], ...(pick % 2 ? { tenant } : {}) },
    aimed: pick % 2 === 1,
    across: 'webhooks',
  }),
  'GET /webhooks': (_v, tenant, pick) =>
    pick % 2
      ? { method: 'GET', path: `/webhooks?tenant=${tenant}`, aimed: true, across: 'webhooks' }
      : { method: 'GET', path: '/webhooks', aimed: false, across: 'webhooks' },
  'GET /webhooks/{id}': (v) => ({
    method: 'GET',
    path: `/webhooks/${v.webhook}`,
    aimed: true,
    across: 'webhooks',
  }),
  'DELETE /webhooks/{id}': (v) => ({
    method: 'DELETE',
    path: `/webhooks/${v.webhook}`,
    aimed: true,
    across: 'webhooks',
  }),
  'POST /webhooks/{id}/test': (v) => ({
    method: 'POST',
    path: `/webhooks/${v.webhook}/test`,
    aimed: true,
    across: 'webhooks',
  }),
  'GET /webhooks/{id}/deliveries': (v) => ({
    method: 'GET',
    path: `/webhooks/${v.webhook}/deliveries`,
    aimed: true,
    across: 'webhooks',
  }),
  'POST /webhooks/{id}/deliveries/{delivery_id}/redeliver': (v) => ({
    method: 'POST',
    path: `/webhooks/${v.webhook}/deliveries/${v.delivery}/redeliver`,
    aimed: true,
    across: 'webhooks',
  }),
  'POST /webhooks/task-secret': (_v, tenant, pick) => ({
    method: 'POST',
    path: '/webhooks/task-secret',
    body: pick % 2 ? { tenant } : {},
    aimed: pick % 2 === 1,
    across: 'webhooks',
  }),
  'GET /task-types': () => ({ method: 'GET', path: '/task-types', aimed: false }),
  // The queue is every tenant's: acting on it is acting on theirs.
  'GET /queue': () => ({ method: 'GET', path: '/queue', aimed: true, across: 'queue' }),
  'POST /queue/pause': (_v, _t, pick) => ({
    method: 'POST',
    path: '/queue/pause',
    body: pick % 2 ? { task_name: 'sum_two_numbers' } : {},
    aimed: true,
    across: 'queue',
  }),
  'POST /queue/resume': (_v, _t, pick) => ({
    method: 'POST',
    path: '/queue/resume',
    body: pick % 2 ? { task_name: 'sum_two_numbers' } : {},
    aimed: true,
    across: 'queue',
  }),
  'POST /api-keys': (_v, tenant, pick) => ({
    method: 'POST',
    path: '/api-keys',
    body: { tenant, name: 'from another tenant', scopes: [SCOPES[pick % SCOPES.length]] },
    aimed: true,
    across: 'keys',
  }),
  'GET /api-keys': (_v, tenant, pick) =>
    pick % 2
      ? { method: 'GET', path: `/api-keys?tenant=${tenant}`, aimed: true, across: 'keys' }
      : // Its own tenant's keys: nothing of the others' may be in the list.
        { method: 'GET', path: '/api-keys', aimed: false, across: 'keys' },
  'DELETE /api-keys/{id}': (v) => ({
    method: 'DELETE',
    path: `/api-keys/${v.keyId}`,
    aimed: true,
    across: 'keys',
  }),
  // A tenant's limits: its own admin's, or an operator's; the list of tenants and the task types' are an operator's.
  'GET /tenants/{tenant}/limits': (_v, tenant) => ({
    method: 'GET',
    path: `/tenants/${tenant}/limits`,
    aimed: true,
    across: 'limits',
  }),
  'PUT /tenants/{tenant}/limits': (_v, tenant, pick) => ({
    method: 'PUT',
    path: `/tenants/${tenant}/limits`,
    body: [{ max_queued: 1_000_000 }, { starts_per_minute: null }, { max_running: 1_000_000 }][pick % 3],
    aimed: true,
    across: 'limits',
  }),
  'DELETE /tenants/{tenant}/limits': (_v, tenant) => ({
    method: 'DELETE',
    path: `/tenants/${tenant}/limits`,
    aimed: true,
    across: 'limits',
  }),
  'GET /tenants': () => ({ method: 'GET', path: '/tenants?limit=200', aimed: true, across: 'limits' }),
  'GET /task-types/{name}/limits': () => ({
    method: 'GET',
    path: '/task-types/sum_two_numbers/limits',
    aimed: true,
    across: 'limits',
  }),
  'PUT /task-types/{name}/limits': (_v, _t, pick) => ({
    method: 'PUT',
    path: '/task-types/sum_two_numbers/limits',
    body: pick % 2 ? { max_running: 1_000_000 } : { max_queued: null },
    aimed: true,
    across: 'limits',
  }),
  'DELETE /task-types/{name}/limits': () => ({
    method: 'DELETE',
    path: '/task-types/sum_two_numbers/limits',
    aimed: true,
    across: 'limits',
  }),
  'GET /whoami': () => ({ method: 'GET', path: '/whoami', aimed: false }),
  'GET /stats/throughput': () => ({ method: 'GET', path: '/stats/throughput', aimed: false }),
  // Wait tokens: the victim's token completed with a key (unknown to any other tenant), or a guessed
  // callback URL (no key is read there: it is unknown to everyone).
  'POST /tokens/{token}/complete': (v) => ({
    method: 'POST',
    path: `/tokens/${v.token}/complete`,
    body: { output: { approved: true } },
    aimed: true,
  }),
  'POST /token-callbacks/{secret}': () => ({
    method: 'POST',
    path: `/token-callbacks/${guessedSecret()}`,
    body: { output: 'guessed' },
    aimed: true,
  }),
  // Model usage: the caller's own tenant's; another tenant's, or every tenant's, an operator's.
  'GET /usage': (_v, tenant, pick) =>
    [
      { method: 'GET', path: '/usage?group_by=task_type', aimed: false },
      { method: 'GET', path: `/usage?tenant=${tenant}`, aimed: true, across: 'usage' as const },
      { method: 'GET', path: '/usage?tenant=*&group_by=tenant', aimed: true, across: 'usage' as const },
    ][pick % 3] as Plan,
  'GET /tasks/{id}/events': (v, _t, pick) => ({
    method: 'GET',
    path: `/tasks/${[v.completed, v.delayed, v.cancelled][pick % 3]}/events`,
    aimed: true,
  }),
  'GET /healthz': () => ({ method: 'GET', path: '/healthz', aimed: false }),
  'GET /readyz': () => ({ method: 'GET', path: '/readyz', aimed: false }),
  'GET /metrics': () => ({ method: 'GET', path: '/metrics', aimed: false }),
  'GET /openapi.json': () => ({ method: 'GET', path: '/openapi.json', aimed: false }),
};

/** What of `victim`'s must never be in an answer to another tenant. */
const secretsOf = (v: Owned) => [
  v.marker,
  v.completed,
  v.delayed,
  v.cancelled,
  v.keyId,
  v.keyPrefix,
  v.operation,
  v.schedule,
  v.webhook,
  v.delivery,
];

const attacker: fc.Arbitrary<Attacker> = fc
  .record({
    tenant: fc.constantFrom(...TENANTS),
    set: fc.nat({ max: SCOPE_SETS.length - 1 }),
    state: fc.oneof(
      { weight: 8, arbitrary: fc.constant('live' as const) },
      { weight: 1, arbitrary: fc.constantFrom('revoked' as const, 'expired' as const) },
      { weight: 1, arbitrary: fc.constantFrom('malformed' as const, 'none' as const) },
    ),
  })
  .map(({ tenant, set, state }) => ({
    tenant,
    scopes: SCOPE_SETS[set] ?? [],
    state,
    bearer:
      state === 'live'
        ? pool[tenant][set]
        : state === 'revoked' || state === 'expired'
          ? dead[tenant][state]
          : state === 'malformed'
            ? 'tsk_short'
            : undefined,
  }));

describe('the scope matrix, over every operation of the document', () => {
  it('has a plan for every operation, and none for an operation it lacks', () => {
    expect(operations.filter((o) => !(o in PLANS))).toEqual([]);
    expect(Object.keys(PLANS).filter((o) => !operations.includes(o))).toEqual([]);
  });

  it("an action on another tenant's resource is refused or unknown, never succeeds, and no answer leaks another tenant's data", async () => {
    await fc.assert(
      fc.asyncProperty(
        attacker,
        fc.nat({ max: 1000 }),
        fc.nat({ max: 1 }),
        fc.nat({ max: 1000 }),
        async (who, op, otherIndex, pick) => {
          const operation = operations[op % operations.length] ?? '';
          const others = TENANTS.filter((t) => t !== who.tenant);
          const victimTenant = others[otherIndex % others.length] as Tenant;
          const victim = owned[victimTenant];
          const plan = PLANS[operation]?.(victim, victimTenant, pick);
          if (!plan) throw new Error(`no plan for ${operation}`);
          const res = await call(plan.method, plan.path, who.bearer, plan.body);
          const label = `${who.state} key of ${who.tenant} [${who.scopes.join(',')}] → ${plan.method} ${plan.path} ${JSON.stringify(plan.body ?? '')}: ${res.status} ${res.text.slice(0, 300)}`;
          expect(res.status, label).toBeLessThan(500);
          const open = /^\/(healthz|readyz|metrics|openapi\.json|token-callbacks\/)/.test(plan.path);
          if (who.state !== 'live' && !open) expect(res.status, label).toBe(401);
          const operatorMay =
            who.state === 'live' && who.scopes.includes('operator') && plan.across !== undefined;
          if (plan.aimed && !operatorMay) expect([401, 403, 404], label).toContain(res.status);
          if (operatorMay && plan.across === 'keys' && plan.method === 'DELETE' && res.status === 200)
            revokedByOperator.add(victim.keyId);
          if (operatorMay && plan.method === 'PUT' && plan.path.startsWith('/tenants/') && res.status === 200)
            limitedByOperator.add(victimTenant);
          // No answer carries another tenant's data, but what an operator is let to see of their keys
          // and webhooks.
          if (!(operatorMay && (plan.across === 'keys' || plan.across === 'webhooks'))) {
            for (const tenant of others)
              for (const secret of secretsOf(owned[tenant])) expect(res.text, label).not.toContain(secret);
          }
        },
      ),
      { numRuns: Number(process.env.TEST_PROPERTY_RUNS ?? 300) },
    );
  }, 300_000);

  it("left every tenant's resources as they were (but what an operator may change)", async () => {
    for (const tenant of TENANTS) {
      const own = pool[tenant][SCOPE_SETS.findIndex((s) => s.join() === 'tasks:read')] ?? '';
      const state = async (id: string) =>
        (JSON.parse((await call('GET', `/tasks/${id}`, own)).text) as { status: string }).status;
      expect(await state(owned[tenant].completed)).toBe('COMPLETED');
      expect(await state(owned[tenant].delayed)).toBe('PENDING');
      expect(await state(owned[tenant].cancelled)).toBe('CANCELLED');
      // Its target key: live, unless an operator key revoked it (which the design lets it do).
      const key = await store.get(owned[tenant].keyId);
      expect(Boolean(key?.revokedAt)).toBe(revokedByOperator.has(owned[tenant].keyId));
      // Its limits: none, unless an operator key set them (which the design lets it do).
      if (!limitedByOperator.has(tenant)) {
        const [limits] = await db.sql`select * from tenant_limits where tenant_id = ${tenant}`;
        expect(limits, `${tenant}'s limits`).toBeUndefined();
      }
      // No key was made in it by another tenant's admin: every key made over the API there was made by an operator.
      for (const made of (await store.list(tenant)).filter((k) => k.createdBy)) {
        const creator = await store.get(made.createdBy ?? '');
        expect(creator?.tenantId === tenant || creator?.scopes.includes('operator'), made.name).toBe(true);
      }
    }
  });
});
