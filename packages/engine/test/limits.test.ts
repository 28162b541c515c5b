/**
 * The Limits reader: effective limits (each field the stored value, else the default), copies at
 * most maxAgeMs old, one query for concurrent reads, invalidate(), and the last copy standing when
 * PostgreSQL cannot be read. Over a fake store: no database.
 */
import type { LimitStore, StoredTenantLimits, StoredTypeLimits } from '@tasker/db';
import { describe, expect, it } from 'vitest';
import { Limits, loadEnv, tenantLimitDefaults, typeLimitDefaults } from '../src/index.ts';

function fakeStore() {
  const tenants = new Map<string, StoredTenantLimits>();
  const types = new Map<string, StoredTypeLimits>();
  const calls = { tenants: 0, types: 0 };
  let failing = false;
  const store = {
    getTenants: async (ids: readonly string[]) => {
      calls.tenants++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (failing) throw new Error('connection refused');
      return ids.flatMap((id) => {
        const row = tenants.get(id);
        return row ? [row] : [];
      });
    },
    listTypes: async () => {
      calls.types++;
      if (failing) throw new Error('connection refused');
      return [...types.values()];
    },
  } as unknown as LimitStore;
  const setTenant = (tenantId: string, values: Partial<StoredTenantLimits>) =>
    tenants.set(tenantId, {
      tenantId,
      maxRunning: null,
      maxQueued: null,
      startsPerMinute: null,
      llmTokensPerDay: null,
      llmCostPerMonthUsd: null,
      updatedAt: new Date(),
      ...values,
    });
  const setType = (name: string, values: Partial<StoredTypeLimits>) =>
    types.set(name, {
      name,
      maxRunning: null,
      maxQueued: null,
      startsPerMinute: null,
      maxRunningPerKey: null,
      updatedAt: new Date(),
      ...values,
    });
  return { store, setTenant, setType, calls, fail: (on: boolean) => (failing = on) };
}

const DEFAULTS = { maxRunning: 10, maxQueued: null, startsPerMinute: 600 };

describe('Limits', () => {
  it('the environment gives the defaults of every tenant; unset is unlimited', () => {
    const env = loadEnv({ DATABASE_URL: 'postgres://x@h/db', TENANT_MAX_QUEUED: '50' });
    expect(tenantLimitDefaults(env)).toEqual({ maxRunning: null, maxQueued: 50, startsPerMinute: null });
    expect(() => loadEnv({ DATABASE_URL: 'postgres://x@h/db', TENANT_MAX_RUNNING: '-1' })).toThrow(
      /TENANT_MAX_RUNNING/,
    );
    expect(() => loadEnv({ DATABASE_URL: 'postgres://x@h/db', TENANT_STARTS_PER_MINUTE: '2000000' })).toThrow(
      /TENANT_STARTS_PER_MINUTE/,
    );
  });

  it('each field is the stored value, else the default; a type over its defineTask defaults', async () => {
    const fake = fakeStore();
    const limits = new Limits(fake.store, DEFAULTS);
    fake.setTenant('a', { maxQueued: 5, maxRunning: 0 });
    expect(await limits.tenant('a')).toEqual({ maxRunning: 0, maxQueued: 5, startsPerMinute: 600 });
    expect(await limits.tenant('b')).toEqual(DEFAULTS);
    expect(typeLimitDefaults('sum_two_numbers')).toEqual({
      maxRunning: null,
      maxQueued: null,
      startsPerMinute: null,
      maxRunningPerKey: null,
    });
    fake.setType('sum_two_numbers', { maxRunningPerKey: 2 });
    expect(await limits.type('sum_two_numbers')).toMatchObject({ maxRunningPerKey: 2, maxRunning: null });
  });

  it('reads at most once per maxAgeMs per tenant, concurrent reads sharing one query; invalidate() reads again', async () => {
    const fake = fakeStore();
    const limits = new Limits(fake.store, DEFAULTS, { maxAgeMs: 100 });
    await Promise.all(Array.from({ length: 20 }, () => limits.tenant('a')));
    expect(fake.calls.tenants).toBe(1);
    fake.setTenant('a', { maxQueued: 1 });
    expect((await limits.tenant('a')).maxQueued).toBeNull(); // the copy, younger than 100 ms
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect((await limits.tenant('a')).maxQueued).toBe(1);
    fake.setTenant('a', { maxQueued: 2 });
    limits.invalidate();
    expect((await limits.tenant('a')).maxQueued).toBe(2);
    // Many tenants at once: one query for those not read lately.
    const before = fake.calls.tenants;
    const many = await limits.tenants(['a', 'x', 'y', 'z']);
    expect(fake.calls.tenants).toBe(before + 1);
    expect(many.get('a')?.maxQueued).toBe(2);
    expect(many.get('z')).toEqual(DEFAULTS);
  });

  it('keeps the last copy when PostgreSQL cannot be read; without one, the read fails', async () => {
    const fake = fakeStore();
    const limits = new Limits(fake.store, DEFAULTS, { maxAgeMs: 0 });
    fake.setTenant('a', { maxQueued: 3 });
    expect((await limits.tenant('a')).maxQueued).toBe(3);
    await limits.type('sum_two_numbers');
    fake.fail(true);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await limits.tenant('a')).maxQueued).toBe(3);
    await expect(limits.tenant('never-read')).rejects.toThrow(/connection refused/);
    await expect(limits.type('sum_two_numbers')).resolves.toMatchObject({ maxQueued: null });
  });

  it('holds at most maxTenants copies', async () => {
    const fake = fakeStore();
    const limits = new Limits(fake.store, DEFAULTS, { maxTenants: 3 });
    await limits.tenants(['a', 'b', 'c', 'd', 'e']);
    const before = fake.calls.tenants;
    await limits.tenant('e'); // kept
    expect(fake.calls.tenants).toBe(before);
    await limits.tenant('a'); // dropped: read again
    expect(fake.calls.tenants).toBe(before + 1);
  });
});
