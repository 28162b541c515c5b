import type { UsageGroup, UsageReportRow, UsageReports } from '@tasker/db';
import { type Budgets, ForbiddenError, iso } from '@tasker/engine';
import { type Identity, isOperator } from './auth.ts';
import type { BudgetsView } from './limits-api.ts';

/** A usage report's groups and totals, as the API answers them (snake_case, as the issue names them). */
export interface UsageRowView {
  key: string;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  calls: number;
  tasks: number;
}

export interface UsageReportView {
  /** The tenant reported; null: every tenant (an operator's `tenant=*`). */
  tenant: string | null;
  from: string;
  to: string;
  group_by: UsageGroup;
  rows: UsageRowView[];
  total: Omit<UsageRowView, 'key'>;
  /** The tenant's LLM budgets and whether its LLM tasks are held now; null for every tenant's report. */
  budgets: BudgetsView | null;
}

export interface UsageRequest {
  from: Date;
  to: Date;
  groupBy: UsageGroup;
  /** A tenant's name, `*` for every tenant, or undefined: the caller's. */
  tenant: string | undefined;
}

/** The 403 of a key naming another tenant (or every tenant) without the operator scope. */
export const OTHER_TENANT_USAGE =
  "A key reads its own tenant's usage only; another tenant's, or every tenant's (tenant=*), needs an operator key";

export interface UsageApi {
  report(caller: Identity, request: UsageRequest): Promise<UsageReportView>;
}

const dayOf = (date: Date) => date.toISOString().slice(0, 10);

const sums = (row: Omit<UsageReportRow, 'key'>): Omit<UsageRowView, 'key'> => ({
  prompt_tokens: row.promptTokens,
  completion_tokens: row.completionTokens,
  cost_usd: row.costUsd,
  calls: row.calls,
  tasks: row.tasks,
});

const view = (row: UsageReportRow): UsageRowView => ({ key: row.key, ...sums(row) });

/** Every UTC day of [from, to), each with its row or zeros: a chart's x axis without holes. */
function everyDay(rows: UsageRowView[], from: Date, to: Date): UsageRowView[] {
  const byDay = new Map(rows.map((row) => [row.key, row]));
  const out: UsageRowView[] = [];
  if (to.getTime() <= from.getTime()) return out;
  const last = dayOf(new Date(to.getTime() - 1));
  for (const at = new Date(dayOf(from)); ; at.setUTCDate(at.getUTCDate() + 1)) {
    const day = dayOf(at);
    out.push(
      byDay.get(day) ?? { key: day, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, calls: 0, tasks: 0 },
    );
    if (day >= last) break;
  }
  return out;
}

/**
 * Usage reports over the ledger of model calls (`task_llm_calls`): the caller's tenant, or, for an
 * operator key, any tenant's or every tenant's (`tenant=*`).
 */
export function createUsageApi(reports: UsageReports, budgets: Budgets): UsageApi {
  return {
    async report(caller, { from, to, groupBy, tenant }) {
      const named = tenant ?? caller.tenantId;
      if (named !== caller.tenantId && !isOperator(caller)) throw new ForbiddenError(OTHER_TENANT_USAGE);
      const tenantId = named === '*' ? undefined : named;
      const [report, budget] = await Promise.all([
        // The groups and the total in one query (distinct tasks are counted over the range, not summed).
        reports.report({ tenantId, from, to, groupBy }),
        tenantId === undefined ? undefined : budgets.state(tenantId),
      ]);
      const views = report.rows.map(view);
      return {
        tenant: tenantId ?? null,
        from: from.toISOString(),
        to: to.toISOString(),
        group_by: groupBy,
        rows: groupBy === 'day' ? everyDay(views, from, to) : views,
        total: sums(report.total),
        budgets: budget
          ? {
              llmTokensPerDay: budget.llmTokensPerDay,
              llmCostPerMonthUsd: budget.llmCostPerMonthUsd,
              tokensToday: budget.tokensToday,
              costThisMonthUsd: budget.costThisMonthUsd,
              exceeded: budget.exceeded?.budget ?? null,
              heldUntil: iso(budget.exceeded?.until ?? null),
            }
          : null,
      };
    },
  };
}
