/**
 * The budgets' UTC windows and the budget reached (pure), and the refusal's words and Retry-After.
 */
import { BudgetExceededError } from '@tasker/tasks';
import { describe, expect, it } from 'vitest';
import { budgetError, budgetWindows } from '../src/budgets.ts';
import { publicFailureOf } from '../src/errors/http.ts';

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
