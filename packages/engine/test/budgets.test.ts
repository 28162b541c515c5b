/**
 * The budgets' UTC windows and the budget reached (pure), the refusal's words and Retry-After, and
 * how often the spend is read (over a fake store: no database).
 */
import type { LimitStore, StoredTenantLimits } from '@tasker/db';
import { BudgetExceededError } from '@tasker/tasks';
import { describe, expect, it } from 'vitest';
import { Budgets, budgetError, budgetWindows, type SpendRead } from '../src/budgets.ts';
import { publicFailureOf } from '../src/errors/http.ts';
import { Limits } from '../src/limits.ts';

describe('budget windows (UTC)', () => {
  it('the day from 00:00 UTC, the month from the 1st, across a year', () => {
    expect(budgetWindows(new Date('2026-12-31T23:59:59.999Z'))).toEqual({
      dayStart: new Date('2026-12-31T00:00:00Z'),
      dayEnd: new Date('2027-01-01T00:00:00Z'),
      monthStart: new Date('2026-12-01T00:00:00Z'),
      monthEnd: new Date('2027-01-01T00:00:00Z'),
    });
    expect(budgetWindows(new Date('2028-02-29T00:00:00Z'))).toMatchObject({
      dayEnd: new Date('2028-03-01T00:00:00Z'),
      monthStart: new Date('2028-02-01T00:00:00Z'),
    });
  });
});

describe('a budget reached, as a client sees it', () => {
  it('429 BUDGET_EXCEEDED with the seconds until the window turns', () => {
    const until = new Date(Date.now() + 90_500);
    const error = budgetError('acme', { budget: 'llm_tokens_per_day', limit: 100, used: 104, until });
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error.message).toMatch(/tenant "acme" has 104 tokens used today of its llm_tokens_per_day 100/);
    expect(publicFailureOf(error)).toEqual({
      status: 429,
      code: 'BUDGET_EXCEEDED',
      message: error.message,
      retryAfterSeconds: 91,
    });
    const month = budgetError('acme', {
      budget: 'llm_cost_per_month_usd',
      limit: 5,
      used: 5.25,
      until: new Date(Date.now() - 10),
    });
    expect(month.message).toMatch(/\$5.25 spent this month of its llm_cost_per_month_usd \$5/);
    // A window that turned a moment ago still says at least a second.
    expect(publicFailureOf(month)?.retryAfterSeconds).toBe(1);
  });
});

/** Budgets over a fake store: each tenant's budgets as given, every spend read counted (5 ms each). */
function fakeBudgets(budgets: Record<string, Partial<StoredTenantLimits>>, maxAgeMs = 1000) {
  const reads: { tenantId: string; dayStart: Date; monthStart: Date | undefined }[] = [];
  let tokens = 0;
  let failing = false;
  const store = {
    getTenants: async (ids: readonly string[]) =>
      ids.flatMap((tenantId) => {
        const row = budgets[tenantId];
        return row
          ? [
              {
                tenantId,
                maxRunning: null,
                maxQueued: null,
                startsPerMinute: null,
                llmTokensPerDay: null,
                llmCostPerMonthUsd: null,
                updatedAt: new Date(),
                ...row,
              },
            ]
          : [];
      }),
    spend: async (tenantId: string, dayStart: Date, monthStart?: Date): Promise<SpendRead> => {
      reads.push({ tenantId, dayStart, monthStart });
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (failing) throw new Error('connection refused');
      return { tokensToday: tokens, costThisMonthUsd: monthStart ? 1 : undefined };
    },
  } as unknown as LimitStore;
  const limits = new Limits(store, { maxRunning: null, maxQueued: null, startsPerMinute: null });
  return {
    budgets: new Budgets(limits, { maxAgeMs }),
    reads,
    use: (n: number) => (tokens = n),
    fail: (on: boolean) => (failing = on),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('reading the spend', () => {
  it('a burst of submissions of one tenant costs one read a second; a tenant without budgets none', async () => {
    const fake = fakeBudgets({ acme: { llmTokensPerDay: 100 } }, 200);
    const answers = await Promise.all(Array.from({ length: 50 }, () => fake.budgets.exceeded('acme')));
    expect(answers.every((a) => a === undefined)).toBe(true);
    expect(fake.reads).toHaveLength(1);
    // Finished, it still answers within the age; the dispatcher's pass shares it.
    fake.use(100);
    expect(await fake.budgets.exceeded('acme')).toBeUndefined();
    expect(await fake.budgets.heldTenants(['acme', 'other'])).toEqual([]);
    expect(fake.reads).toHaveLength(1);
    await sleep(250);
    expect(await fake.budgets.heldTenants(['acme', 'other'])).toEqual(['acme']);
    expect((await fake.budgets.exceeded('acme'))?.budget).toBe('llm_tokens_per_day');
    expect(fake.reads).toHaveLength(2);
    await fake.budgets.exceeded('other');
    await fake.budgets.check('other');
    expect(fake.reads.map((r) => r.tenantId)).toEqual(['acme', 'acme']);
  });

  it("reads what the budgets need: a day budget alone from the day's start, a month budget from the month's", async () => {
    const fake = fakeBudgets({ day: { llmTokensPerDay: 100 }, month: { llmCostPerMonthUsd: 5 } });
    await fake.budgets.exceeded('day');
    await fake.budgets.exceeded('month');
    const windows = budgetWindows(new Date());
    expect(fake.reads).toEqual([
      { tenantId: 'day', dayStart: windows.dayStart, monthStart: undefined },
      { tenantId: 'month', dayStart: windows.dayStart, monthStart: windows.monthStart },
    ]);
    // A view needs both: the day's read does not answer it, the month's does.
    const state = await fake.budgets.state('day');
    expect(state).toMatchObject({ tokensToday: 0, costThisMonthUsd: 1, exceeded: undefined });
    await fake.budgets.state('month');
    expect(fake.reads).toHaveLength(3);
  });

  it('the check before a model call joins a read under way, never takes a finished one', async () => {
    const fake = fakeBudgets({ acme: { llmTokensPerDay: 100 } });
    await Promise.all([
      fake.budgets.check('acme'),
      fake.budgets.check('acme'),
      fake.budgets.exceeded('acme'),
    ]);
    expect(fake.reads).toHaveLength(1);
    fake.use(100);
    // Finished a moment ago: a submission takes it, the check reads again and sees the budget reached.
    expect(await fake.budgets.exceeded('acme')).toBeUndefined();
    await expect(fake.budgets.check('acme')).rejects.toBeInstanceOf(BudgetExceededError);
    expect(fake.reads).toHaveLength(2);
    // The check's fresh read answers the next submission.
    expect((await fake.budgets.exceeded('acme'))?.used).toBe(100);
    expect(fake.reads).toHaveLength(2);
  });

  it("a call this process recorded drops the tenant's answer; a read that failed is not kept", async () => {
    const fake = fakeBudgets({ acme: { llmTokensPerDay: 100 } });
    await fake.budgets.exceeded('acme');
    fake.use(100);
    fake.budgets.spent('acme');
    expect((await fake.budgets.exceeded('acme'))?.budget).toBe('llm_tokens_per_day');
    expect(fake.reads).toHaveLength(2);
    fake.budgets.spent('acme');
    fake.fail(true);
    await expect(fake.budgets.exceeded('acme')).rejects.toThrow('connection refused');
    fake.fail(false);
    expect((await fake.budgets.exceeded('acme'))?.budget).toBe('llm_tokens_per_day');
    expect(fake.reads).toHaveLength(4);
  });
});
