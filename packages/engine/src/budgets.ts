import type { BudgetSpend, BudgetValues } from '@tasker/db';
import { BudgetExceededError, getTaskDefinition, taskNames } from '@tasker/tasks';
import type { Limits } from './limits.ts';

export type { BudgetValues };

/** A budget's name, as the API and the error say it. */
export type BudgetName = 'llm_tokens_per_day' | 'llm_cost_per_month_usd';

/** The UTC windows of the budgets around `now`: the day's and the month's. */
export function budgetWindows(now: Date): { dayStart: Date; dayEnd: Date; monthStart: Date; monthEnd: Date } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  const d = now.getUTCDate();
  return {
    dayStart: new Date(Date.UTC(y, m, d)),
    dayEnd: new Date(Date.UTC(y, m, d + 1)),
    monthStart: new Date(Date.UTC(y, m, 1)),
    monthEnd: new Date(Date.UTC(y, m + 1, 1)),
  };
}

/** A budget reached: which, its value, what was used, and when its window turns. */
export interface Exceeded {
  budget: BudgetName;
  limit: number;
  used: number;
  until: Date;
}

/** A tenant's budgets, what its calls used in their windows, and whether one is reached. */
export interface BudgetState extends BudgetValues, BudgetSpend {
  dayEndsAt: Date;
  monthEndsAt: Date;
  /** The budget reached (the one whose window turns last, when both are); undefined: within both. */
  exceeded: Exceeded | undefined;
}

/** Whether a task type calls a model: its definition declares `llm` bounds. */
export const isLlmType = (name: string): boolean => getTaskDefinition(name)?.llm !== undefined;

/** The task types of the catalog that call a model (those an over-budget tenant's dispatch holds). */
export const llmTypeNames = (): string[] => taskNames.filter(isLlmType);

const NO_BUDGETS: BudgetValues = { llmTokensPerDay: null, llmCostPerMonthUsd: null };

/**
 * Per-tenant LLM budgets (`llm_tokens_per_day`, `llm_cost_per_month_usd`, UTC windows), set with
 * the tenant's limits (`tenant_limits`, read through `Limits`: at most 1 s stale) and measured on
 * the ledger of calls (`task_llm_calls`). Three places ask:
 *
 * - a submission of an LLM type (`submit`, `submitMany`): over a budget, refused with
 *   `BudgetExceededError` (429 BUDGET_EXCEEDED, Retry-After to the window's end);
 * - the dispatcher (`heldTenants`, at most 1 s old): an over-budget tenant's tasks of LLM types are
 *   not handed out, so they stay PENDING (held) until the window turns or the budget is raised;
 * - every model call, right before it starts (`check`, spend read uncached): over a budget, the
 *   call does not start and the attempt is handed back, uncounted, to be held by the dispatcher.
 */
export class Budgets {
  private readonly heldCache = new Map<string, { exceeded: Exceeded | undefined; at: number }>();

  constructor(
    private readonly limits: Limits,
    private readonly options: { maxAgeMs?: number } = {},
  ) {}

  /** A tenant's budgets as set (null: none). */
  async values(tenantId: string): Promise<BudgetValues> {
    return (await this.limits.budgetValues([tenantId])).get(tenantId) ?? NO_BUDGETS;
  }

  /** A tenant's budgets, its spend in their windows, and the budget reached if any (spend read now). */
  async state(tenantId: string, now = new Date()): Promise<BudgetState> {
    return this.stateOf(tenantId, await this.values(tenantId), now);
  }

  /**
   * The state of budgets `values` (as just read or written) of the tenant, its spend read now (also
   * without a budget: the limits view and GET /usage show what was used). The hot paths (`exceeded`,
   * `heldTenants`) do not come here for a tenant without budgets.
   */
  async stateOf(tenantId: string, values: BudgetValues, now = new Date()): Promise<BudgetState> {
    const windows = budgetWindows(now);
    const spend = await this.limits.store.spend(tenantId, windows.dayStart, windows.monthStart);
    return {
      ...values,
      ...spend,
      dayEndsAt: windows.dayEnd,
      monthEndsAt: windows.monthEnd,
      exceeded: exceededOf(values, spend, windows.dayEnd, windows.monthEnd),
    };
  }

  /** The budget the tenant has reached, read now; undefined when within both (or none is set). */
  async exceeded(tenantId: string): Promise<Exceeded | undefined> {
    const values = await this.values(tenantId);
    if (values.llmTokensPerDay === null && values.llmCostPerMonthUsd === null) return undefined;
    return (await this.state(tenantId)).exceeded;
  }

  /** Throws BudgetExceededError when the tenant has reached a budget (read now: before a model call). */
  async check(tenantId: string): Promise<void> {
    const exceeded = await this.exceeded(tenantId);
    if (exceeded) throw budgetError(tenantId, exceeded);
  }

  /**
   * Of these tenants, those over a budget now: their LLM tasks wait. Each tenant's answer is kept
   * `maxAgeMs` (1 s): the dispatcher asks every pass. Tenants without budgets cost no query.
   */
  async heldTenants(tenantIds: readonly string[]): Promise<string[]> {
    const now = Date.now();
    const maxAge = this.options.maxAgeMs ?? 1000;
    const budgets = await this.limits.budgetValues(tenantIds);
    const held: string[] = [];
    await Promise.all(
      tenantIds.map(async (tenantId) => {
        const values = budgets.get(tenantId) ?? NO_BUDGETS;
        if (values.llmTokensPerDay === null && values.llmCostPerMonthUsd === null) {
          this.heldCache.delete(tenantId);
          return;
        }
        let entry = this.heldCache.get(tenantId);
        if (!entry || now - entry.at > maxAge) {
          entry = { exceeded: (await this.state(tenantId)).exceeded, at: now };
          this.heldCache.set(tenantId, entry);
        }
        if (entry.exceeded) held.push(tenantId);
      }),
    );
    if (this.heldCache.size > 10_000) this.heldCache.clear();
    return held;
  }
}

function exceededOf(
  values: BudgetValues,
  spend: BudgetSpend,
  dayEnd: Date,
  monthEnd: Date,
): Exceeded | undefined {
  const reached: Exceeded[] = [];
  if (values.llmTokensPerDay !== null && spend.tokensToday >= values.llmTokensPerDay)
    reached.push({
      budget: 'llm_tokens_per_day',
      limit: values.llmTokensPerDay,
      used: spend.tokensToday,
      until: dayEnd,
    });
  if (values.llmCostPerMonthUsd !== null && spend.costThisMonthUsd >= values.llmCostPerMonthUsd)
    reached.push({
      budget: 'llm_cost_per_month_usd',
      limit: values.llmCostPerMonthUsd,
      used: spend.costThisMonthUsd,
      until: monthEnd,
    });
  // Both reached: nothing runs until the later window turns.
  return reached.sort((a, b) => b.until.getTime() - a.until.getTime())[0];
}

/** The error of a budget reached: 429 BUDGET_EXCEEDED at submission, a hold at a call. */
export function budgetError(tenantId: string, exceeded: Exceeded): BudgetExceededError {
  const what =
    exceeded.budget === 'llm_tokens_per_day'
      ? `${exceeded.used} tokens used today of its llm_tokens_per_day ${exceeded.limit}`
      : `$${exceeded.used} spent this month of its llm_cost_per_month_usd $${exceeded.limit}`;
  return new BudgetExceededError(
    `LLM budget reached: tenant "${tenantId}" has ${what} (until ${exceeded.until.toISOString()}, UTC); its LLM tasks wait until then or until the budget is raised`,
    exceeded.budget,
    exceeded.until,
  );
}
