import type { BudgetSpend, BudgetValues, SpendRead } from '@tasker/db';
import { BudgetExceededError, getTaskDefinition, taskNames } from '@tasker/tasks';
import type { Limits } from './limits.ts';

export type { BudgetValues, SpendRead };

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

const hasBudget = (values: BudgetValues) =>
  values.llmTokensPerDay !== null || values.llmCostPerMonthUsd !== null;

/** A read of a tenant's spend: under way or done, begun `at`, for the day `dayStart`, dollars read or not. */
interface SpendEntry {
  read: Promise<SpendRead>;
  at: number;
  dayStart: number;
  withCost: boolean;
  settled: boolean;
}

/**
 * The check before a model call joins a read of the spend begun at most this long ago and still
 * under way (the slots of one tenant starting calls at once share it); an older one may predate
 * another worker's call, so it reads again.
 */
const CHECK_JOIN_MS = 50;

/** How fresh a read of the spend must be: begun within `maxAgeMs`; `underWay`: only one not finished. */
interface Freshness {
  maxAgeMs: number;
  underWay?: boolean;
}

/**
 * Per-tenant LLM budgets (`llm_tokens_per_day`, `llm_cost_per_month_usd`, UTC windows), set with
 * the tenant's limits (`tenant_limits`, read through `Limits`: at most 1 s stale) and measured on
 * the ledger of calls (`task_llm_calls`). Three places ask:
 *
 * - a submission of an LLM type (`submit`, `submitMany`): over a budget, refused with
 *   `BudgetExceededError` (429 BUDGET_EXCEEDED, Retry-After to the window's end);
 * - the dispatcher (`heldTenants`): an over-budget tenant's tasks of LLM types are not handed out,
 *   so they stay PENDING (held) until the window turns or the budget is raised;
 * - every model call, right before it starts (`check`): over a budget, the call does not start and
 *   the attempt is handed back, uncounted, to be held by the dispatcher.
 *
 * The spend is read once for all three, per tenant: a read begun within `maxAgeMs` (1 s), finished
 * or under way, answers a submission, the dispatcher and the limits and usage views, so a burst of
 * submissions of one tenant costs one query a second. The check before a model call takes no
 * finished answer: it joins a read under way begun at most CHECK_JOIN_MS (50 ms) before, else
 * reads; so no call starts once the ledger shows the budget reached. A read covers
 * what the tenant's budgets need: a day budget alone walks the ledger from the day's start, a month
 * budget (or a view) from the month's. A call this process records drops its tenant's answer.
 */
export class Budgets {
  private readonly spends = new Map<string, SpendEntry>();

  constructor(
    private readonly limits: Limits,
    private readonly options: { maxAgeMs?: number } = {},
  ) {}

  private get maxAgeMs(): number {
    return this.options.maxAgeMs ?? 1000;
  }

  /** A tenant's budgets as set (null: none). */
  async values(tenantId: string): Promise<BudgetValues> {
    return (await this.limits.budgetValues([tenantId])).get(tenantId) ?? NO_BUDGETS;
  }

  /** A tenant's budgets, its spend in their windows (at most 1 s old), and the budget reached if any. */
  async state(tenantId: string, now = new Date()): Promise<BudgetState> {
    return this.stateOf(tenantId, await this.values(tenantId), now);
  }

  /**
   * The state of budgets `values` (as just read or written) of the tenant, its spend at most 1 s
   * old (also without a budget: the limits view and GET /usage show what was used). The hot paths
   * (`exceeded`, `heldTenants`, `check`) do not come here, nor query, for a tenant without budgets.
   */
  async stateOf(tenantId: string, values: BudgetValues, now = new Date()): Promise<BudgetState> {
    const windows = budgetWindows(now);
    const read = await this.spend(tenantId, windows, true, { maxAgeMs: this.maxAgeMs });
    const spend = { tokensToday: read.tokensToday, costThisMonthUsd: read.costThisMonthUsd ?? 0 };
    return {
      ...values,
      ...spend,
      dayEndsAt: windows.dayEnd,
      monthEndsAt: windows.monthEnd,
      exceeded: exceededOf(values, read, windows.dayEnd, windows.monthEnd),
    };
  }

  /** The budget the tenant has reached (spend at most 1 s old); undefined when within both or none is set. */
  exceeded(tenantId: string): Promise<Exceeded | undefined> {
    return this.exceededNow(tenantId, { maxAgeMs: this.maxAgeMs });
  }

  /**
   * Throws BudgetExceededError when the tenant has reached a budget: before a model call, so no
   * finished answer is taken (only a read under way is joined).
   */
  async check(tenantId: string): Promise<void> {
    const exceeded = await this.exceededNow(tenantId, { maxAgeMs: CHECK_JOIN_MS, underWay: true });
    if (exceeded) throw budgetError(tenantId, exceeded);
  }

  /** A model call of the tenant was recorded by this process: its spend is read again at the next ask. */
  spent(tenantId: string): void {
    this.spends.delete(tenantId);
  }

  /**
   * Of these tenants, those over a budget now: their LLM tasks wait. The dispatcher asks every
   * pass: each tenant's spend is read at most once a second, and tenants without budgets cost no query.
   */
  async heldTenants(tenantIds: readonly string[]): Promise<string[]> {
    const budgets = await this.limits.budgetValues(tenantIds);
    const held: string[] = [];
    await Promise.all(
      tenantIds.map(async (tenantId) => {
        const values = budgets.get(tenantId) ?? NO_BUDGETS;
        if (!hasBudget(values)) return;
        if (await this.exceededOf(tenantId, values, { maxAgeMs: this.maxAgeMs })) held.push(tenantId);
      }),
    );
    return held;
  }

  private async exceededNow(tenantId: string, fresh: Freshness): Promise<Exceeded | undefined> {
    const values = await this.values(tenantId);
    if (!hasBudget(values)) return undefined;
    return this.exceededOf(tenantId, values, fresh);
  }

  private async exceededOf(
    tenantId: string,
    values: BudgetValues,
    fresh: Freshness,
  ): Promise<Exceeded | undefined> {
    const windows = budgetWindows(new Date());
    const spend = await this.spend(tenantId, windows, values.llmCostPerMonthUsd !== null, fresh);
    return exceededOf(values, spend, windows.dayEnd, windows.monthEnd);
  }

  /**
   * The tenant's spend in `windows`: a read of the same day, covering the dollars if `withCost`,
   * begun within `fresh.maxAgeMs` (and not finished, if `fresh.underWay`), else a new one (kept for
   * the next asks; a read that fails is not kept).
   */
  private spend(
    tenantId: string,
    windows: { dayStart: Date; monthStart: Date },
    withCost: boolean,
    fresh: Freshness,
  ): Promise<SpendRead> {
    const now = Date.now();
    const dayStart = windows.dayStart.getTime();
    const kept = this.spends.get(tenantId);
    if (
      kept &&
      kept.dayStart === dayStart &&
      (kept.withCost || !withCost) &&
      now - kept.at <= fresh.maxAgeMs &&
      !(fresh.underWay && kept.settled)
    )
      return kept.read;
    const entry: SpendEntry = {
      read: this.limits.store.spend(tenantId, windows.dayStart, withCost ? windows.monthStart : undefined),
      at: now,
      dayStart,
      withCost,
      settled: false,
    };
    entry.read.then(
      () => {
        entry.settled = true;
      },
      () => {
        if (this.spends.get(tenantId) === entry) this.spends.delete(tenantId);
      },
    );
    if (this.spends.size >= 10_000 && !this.spends.has(tenantId)) this.spends.clear();
    this.spends.set(tenantId, entry);
    return entry.read;
  }
}

function exceededOf(
  values: BudgetValues,
  spend: SpendRead,
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
  // The dollars are read whenever a month budget is set (`spend`'s withCost).
  if (
    values.llmCostPerMonthUsd !== null &&
    spend.costThisMonthUsd !== undefined &&
    spend.costThisMonthUsd >= values.llmCostPerMonthUsd
  )
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
