import type { HoldingGroup, ReadyTask } from '@tasker/db';
import { describe, expect, it } from 'vitest';
import { Pace, type PlanInput, plan } from '../src/dispatch/plan.ts';

let n = 0;
const task = (tenantId: string, extra: Partial<ReadyTask> = {}): ReadyTask => ({
  id: `t${++n}`,
  tenantId,
  name: 'sum_two_numbers',
  concurrencyKey: tenantId,
  priority: 0,
  maxAttempts: 1,
  runAfter: null,
  ...extra,
});
const none = { maxRunning: null, startsPerMinute: null };
const input = (over: Partial<PlanInput>): PlanInput => ({
  free: 100,
  candidates: [],
  holding: [],
  tenantLimits: () => none,
  typeLimits: () => ({ ...none, maxRunningPerKey: null }),
  pace: new Pace(),
  now: 0,
  ...over,
});

describe('plan (fair dequeue)', () => {
  it("puts another tenant's single task first, whatever the flood before it", () => {
    const flood = Array.from({ length: 50 }, () => task('a'));
    const holding: HoldingGroup[] = [
      { tenantId: 'a', name: 'sum_two_numbers', concurrencyKey: 'a', holding: 40, waiting: 10 },
    ];
    const picks = plan(input({ free: 3, candidates: [...flood, task('b')], holding }));
    expect(picks.map((p) => p.task.tenantId)).toEqual(['b', 'a', 'a']);
    expect(picks[0]?.order).toBe(1);
    expect(picks[1]?.order).toBe(41);
  });

  it('alternates tenants round by round, and keys within a tenant', () => {
    const candidates = [
      task('a', { concurrencyKey: 'k1' }),
      task('a', { concurrencyKey: 'k1' }),
      task('a', { concurrencyKey: 'k2' }),
      task('b'),
      task('b'),
    ];
    const picks = plan(input({ candidates }));
    expect(picks.map((p) => `${p.task.tenantId}:${p.task.concurrencyKey}`)).toEqual([
      'a:k1',
      'b:b',
      'a:k2',
      'b:b',
      'a:k1',
    ]);
  });

  it('gives a tenant nothing for spreading its tasks over many keys', () => {
    const many = Array.from({ length: 20 }, (_, i) => task('a', { concurrencyKey: `k${i}` }));
    const picks = plan(
      input({ free: 10, candidates: [...many, ...Array.from({ length: 20 }, () => task('b'))] }),
    );
    const count = (t: string) => picks.filter((p) => p.task.tenantId === t).length;
    expect([count('a'), count('b')]).toEqual([5, 5]);
  });

  it('never takes beyond a limit: tenant, type, per key', () => {
    const candidates = [
      ...Array.from({ length: 10 }, () => task('a')),
      ...Array.from({ length: 10 }, () => task('b', { name: 'slow', concurrencyKey: 'x' })),
      ...Array.from({ length: 10 }, () => task('c', { name: 'slow', concurrencyKey: 'y' })),
    ];
    const picks = plan(
      input({
        candidates,
        holding: [{ tenantId: 'a', name: 'sum_two_numbers', concurrencyKey: 'a', holding: 1, waiting: 0 }],
        tenantLimits: (t) => (t === 'a' ? { maxRunning: 3, startsPerMinute: null } : none),
        typeLimits: (name) =>
          name === 'slow'
            ? { maxRunning: 5, startsPerMinute: null, maxRunningPerKey: 3 }
            : { ...none, maxRunningPerKey: null },
      }),
    );
    const count = (f: (t: ReadyTask) => boolean) => picks.filter((p) => f(p.task)).length;
    expect(count((t) => t.tenantId === 'a')).toBe(2);
    expect(count((t) => t.name === 'slow')).toBe(5);
    expect(count((t) => t.concurrencyKey === 'x')).toBeLessThanOrEqual(3);
    expect(count((t) => t.concurrencyKey === 'y')).toBeLessThanOrEqual(3);
  });

  it('spreads starts to starts_per_minute across passes', () => {
    const pace = new Pace();
    const candidates = Array.from({ length: 10 }, () => task('a'));
    const limits = () => ({ maxRunning: null, startsPerMinute: 120 });
    expect(plan(input({ candidates, pace, now: 0, tenantLimits: limits }))).toHaveLength(1);
    expect(plan(input({ candidates, pace, now: 100, tenantLimits: limits }))).toHaveLength(0);
    expect(plan(input({ candidates, pace, now: 500, tenantLimits: limits }))).toHaveLength(1);
  });

  it('never takes more than free, and each task at most once (random inputs)', () => {
    for (let round = 0; round < 200; round++) {
      const tenants = ['a', 'b', 'c', 'd'].slice(0, 1 + (round % 4));
      const candidates = Array.from({ length: round % 37 }, (_, i) =>
        task(tenants[i % tenants.length] ?? 'a', { concurrencyKey: `k${i % 3}`, name: i % 2 ? 'x' : 'y' }),
      );
      const free = round % 11;
      const max = 1 + (round % 5);
      const picks = plan(
        input({
          free,
          candidates,
          typeLimits: () => ({ maxRunning: null, startsPerMinute: null, maxRunningPerKey: max }),
        }),
      );
      expect(picks.length).toBeLessThanOrEqual(free);
      expect(new Set(picks.map((p) => p.task.id)).size).toBe(picks.length);
      const perKey = new Map<string, number>();
      for (const p of picks) {
        const k = `${p.task.name}/${p.task.concurrencyKey}`;
        perKey.set(k, (perKey.get(k) ?? 0) + 1);
      }
      for (const count of perKey.values()) expect(count).toBeLessThanOrEqual(max);
      // Round-robin: no tenant has two more picks than another that still had candidates left.
      const left = (t: string) => candidates.filter((c) => c.tenantId === t).length;
      const got = (t: string) => picks.filter((p) => p.task.tenantId === t).length;
      for (const t of tenants)
        for (const u of tenants)
          if (left(u) > got(u) && got(t) > got(u) + 1) throw new Error(`unfair: ${t} ${u}`);
    }
  });
});
