import type {
  LimitChange,
  StoredTenantLimits,
  StoredTypeLimits,
  TaskCounts,
  TenantChange,
  TypeLimitValues,
} from '@tasker/db';
import {
  type BudgetState,
  DEFAULT_TENANT,
  effectiveLimits,
  ForbiddenError,
  iso,
  isoDate,
  type Limits,
  PublicFailureError,
  typeLimitDefaults,
} from '@tasker/engine';
import { z } from 'zod';
import { type Identity, isOperator, reachable } from './auth.ts';

/**
 * The 403 of a budget set with a tenant's own key: LLM budgets bound what a tenant spends of the
 * operator's model key, so only an operator sets them (a tenant's admin key reads them).
 */
export const BUDGETS_403 =
  "LLM budgets (llm_tokens_per_day, llm_cost_per_month_usd) are set by an operator key: a tenant's admin key may read them, not change them";

const limit = (what: string) => z.number().int().nullable().describe(`${what}; null: no limit`);

/** A holder's three limits, as the API shows them (null: none). */
export const limitsSchema = z
  .object({
    maxRunning: limit('At most this many tasks RUNNING at once, across every worker'),
    maxQueued: limit('A submission beyond this many tasks PENDING is refused: 429, code QUEUE_FULL'),
    startsPerMinute: limit('Task starts spread to at most this many per minute'),
  })
  .meta({ id: 'Limits' });

/** A task type's: the three, and one per concurrency key. */
export const typeLimitsSchema = limitsSchema
  .extend({
    maxRunningPerKey: limit('At most this many tasks of the type RUNNING at once per concurrency key'),
  })
  .meta({ id: 'TypeLimits' });

const counts = {
  running: z.number().int().describe('Tasks RUNNING now (counted up to 100000)'),
  queued: z.number().int().describe('Tasks PENDING now, queued or delayed (counted up to 100000)'),
};

/** A tenant's LLM budgets, what its calls used in their UTC windows, and whether its LLM tasks are held. */
export const budgetsSchema = z
  .object({
    llmTokensPerDay: z
      .number()
      .int()
      .nullable()
      .describe('Tokens (prompt + completion) of its model calls per UTC day; null: no budget'),
    llmCostPerMonthUsd: z
      .number()
      .nullable()
      .describe('US dollars of its model calls per UTC month; null: no budget'),
    tokensToday: z.number().int().describe('Tokens its model calls used since 00:00 UTC'),
    costThisMonthUsd: z.number().describe('US dollars its model calls cost since the 1st, 00:00 UTC'),
    exceeded: z
      .enum(['llm_tokens_per_day', 'llm_cost_per_month_usd'])
      .nullable()
      .describe(
        'The budget reached, or null. While one is: a new task of an LLM type is refused (429 BUDGET_EXCEEDED), and its queued LLM tasks are held PENDING (not handed to a worker) until heldUntil or until the budget is raised',
      ),
    heldUntil: isoDate
      .nullable()
      .describe(
        "When the reached budget's window turns (00:00 UTC, or the 1st of next month); null: nothing held",
      ),
  })
  .meta({ id: 'LlmBudgets' });

export const tenantLimitsSchema = z
  .object({
    tenant: z.string(),
    stored: limitsSchema.describe(
      'What was set at runtime for this tenant (PUT); null where nothing is set, and the default applies',
    ),
    defaults: limitsSchema.describe(
      "The defaults of every tenant: the server's TENANT_MAX_RUNNING, TENANT_MAX_QUEUED, TENANT_STARTS_PER_MINUTE",
    ),
    effective: limitsSchema.describe('What applies: each stored value, else the default'),
    updatedAt: isoDate.nullable().describe('When its limits were last set; null: never (the defaults)'),
    ...counts,
    budgets: budgetsSchema.describe("The tenant's LLM budgets and its spend in their windows"),
  })
  .meta({ id: 'TenantLimits' });

export const typeLimitsViewSchema = z
  .object({
    name: z.string().describe('The task type'),
    stored: typeLimitsSchema.describe(
      'What was set at runtime for this task type (PUT); null where nothing is set, and the default applies',
    ),
    defaults: typeLimitsSchema.describe('The defaults of the type: its defineTask({ limits })'),
    effective: typeLimitsSchema.describe('What applies: each stored value, else the default'),
    updatedAt: isoDate.nullable().describe('When its limits were last set; null: never (the defaults)'),
    running: z.number().int().describe('Tasks of the type RUNNING now, every tenant (counted up to 100000)'),
    queued: z.number().int().describe('Tasks of the type PENDING now, every tenant (counted up to 100000)'),
  })
  .meta({ id: 'TaskTypeLimits' });

export type TenantLimitsView = z.output<typeof tenantLimitsSchema>;
export type BudgetsView = z.output<typeof budgetsSchema>;
export type TypeLimitsView = z.output<typeof typeLimitsViewSchema>;

/** The 403 of an admin key naming another tenant: the words of the document and of the API. */
export const OTHER_TENANT_LIMITS =
  'An admin key reads and sets the limits of its own tenant only; another tenant needs an operator key';

/** The 400 of a PUT for a tenant nothing belongs to (a misspelt name would limit nobody). */
export const UNKNOWN_TENANT =
  'no such tenant: no API key, task or limit belongs to it (make its first key, then set its limits)';

/**
 * Limits at runtime, for the caller's reach: an `admin` key reads and sets its own tenant's; an
 * `operator` key any tenant's, the list of tenants, and the task types' (shared by every tenant).
 * The tenant rule is here (the router passes the caller along); who may call at all (admin, or
 * operator for the list and the task types) is the router's procedures'. A change counts at once
 * on this server and within 2 s on every other process (the engine's `Limits` reads at most 1 s
 * old copies).
 */
export interface LimitsApi {
  getTenant(caller: Identity, tenant: string): Promise<TenantLimitsView>;
  /** A field given changes (null: back to the default, or no budget); the others stay. */
  setTenant(caller: Identity, tenant: string, change: TenantChange): Promise<TenantLimitsView>;
  /** Back to the defaults. */
  clearTenant(caller: Identity, tenant: string): Promise<TenantLimitsView>;
  /** Tenants with limits, keys or tasks, by name, after `cursor` (an operator's: operatorProcedure). */
  listTenants(page: {
    limit: number;
    cursor?: string;
  }): Promise<{ tenants: TenantLimitsView[]; nextCursor: string | null }>;
  getType(name: string): Promise<TypeLimitsView>;
  setType(name: string, change: LimitChange<TypeLimitValues>): Promise<TypeLimitsView>;
  clearType(name: string): Promise<TypeLimitsView>;
}

/**
 * Only these fields of a stored row (null where it has none, or there is no row). The field lists
 * repeat @tasker/db's (limits.ts), which it does not export.
 */
const values = <K extends string>(
  row: Partial<Record<K, number | null>> | undefined,
  fields: readonly K[],
): Record<K, number | null> =>
  Object.fromEntries(fields.map((field) => [field, row?.[field] ?? null])) as Record<K, number | null>;

const TENANT_FIELDS = ['maxRunning', 'maxQueued', 'startsPerMinute'] as const;
const TYPE_FIELDS = [...TENANT_FIELDS, 'maxRunningPerKey'] as const;

export function createLimitsApi(limits: Limits): LimitsApi {
  const { store, tenantDefaults } = limits;
  const tenantView = (
    tenant: string,
    row: StoredTenantLimits | undefined,
    count: TaskCounts | undefined,
    budget: BudgetState,
  ): TenantLimitsView => ({
    tenant,
    stored: values(row, TENANT_FIELDS),
    defaults: tenantDefaults,
    effective: effectiveLimits(row, tenantDefaults),
    updatedAt: iso(row?.updatedAt ?? null),
    running: count?.running ?? 0,
    queued: count?.queued ?? 0,
    budgets: {
      llmTokensPerDay: row?.llmTokensPerDay ?? null,
      llmCostPerMonthUsd: row?.llmCostPerMonthUsd ?? null,
      tokensToday: budget.tokensToday,
      costThisMonthUsd: budget.costThisMonthUsd,
      exceeded: budget.exceeded?.budget ?? null,
      heldUntil: iso(budget.exceeded?.until ?? null),
    },
  });
  /**
   * A tenant's view: its row (as read, as just written, or none once cleared), its counts and its
   * budgets' state (spend read only where a budget is set), read together.
   */
  const withCounts = async (tenant: string, row: Promise<StoredTenantLimits | undefined>) => {
    const [stored, count] = await Promise.all([row, store.countsOf([tenant])]);
    return tenantView(tenant, stored, count.get(tenant), await budgetOf(tenant, stored));
  };
  const budgetOf = (tenant: string, row: StoredTenantLimits | undefined) =>
    limits.budgets.stateOf(tenant, {
      llmTokensPerDay: row?.llmTokensPerDay ?? null,
      llmCostPerMonthUsd: row?.llmCostPerMonthUsd ?? null,
    });
  /** A change stored, then this process's copy of the limits dropped: it counts here at once. */
  const written = async <T>(write: Promise<T>): Promise<T> => {
    const result = await write;
    limits.invalidate();
    return result;
  };
  const typeView = async (name: string, row: StoredTypeLimits | undefined): Promise<TypeLimitsView> => {
    const defaults = typeLimitDefaults(name);
    return {
      name,
      stored: values(row, TYPE_FIELDS),
      defaults,
      effective: effectiveLimits(row, defaults),
      updatedAt: iso(row?.updatedAt ?? null),
      ...(await store.countsOfType(name)),
    };
  };
  return {
    getTenant: async (caller, tenant) =>
      withCounts(tenant, store.getTenant(reachable(caller, tenant, OTHER_TENANT_LIMITS))),
    setTenant: async (caller, tenant, change) => {
      reachable(caller, tenant, OTHER_TENANT_LIMITS);
      if (
        (change.llmTokensPerDay !== undefined || change.llmCostPerMonthUsd !== undefined) &&
        !isOperator(caller)
      )
        throw new ForbiddenError(BUDGETS_403);
      const known =
        tenant === DEFAULT_TENANT || tenant === caller.tenantId || (await store.tenantExists(tenant));
      if (!known) {
        throw new PublicFailureError({
          status: 400,
          message: `tenant: ${UNKNOWN_TENANT}`,
          issues: [{ path: 'tenant', message: UNKNOWN_TENANT }],
        });
      }
      // The upsert answers the row as it now is.
      return withCounts(tenant, written(store.setTenant(tenant, change)));
    },
    clearTenant: async (caller, tenant) => {
      reachable(caller, tenant, OTHER_TENANT_LIMITS);
      // Its limits are gone (the defaults apply); its budgets stay, an operator's to remove.
      const left = written(store.clearTenant(tenant));
      return withCounts(tenant, left);
    },
    listTenants: async ({ limit: size, cursor }) => {
      const names = await store.listTenants(size + 1, cursor);
      const page = names.slice(0, size);
      const [rows, count] = await Promise.all([store.getTenants(page), store.countsOf(page)]);
      const byTenant = new Map(rows.map((row) => [row.tenantId, row]));
      const budgets = await Promise.all(page.map((tenant) => budgetOf(tenant, byTenant.get(tenant))));
      return {
        tenants: page.map((tenant, i) =>
          tenantView(tenant, byTenant.get(tenant), count.get(tenant), budgets[i] as BudgetState),
        ),
        nextCursor: names.length > size ? (page.at(-1) ?? null) : null,
      };
    },
    getType: async (name) => typeView(name, await store.getType(name)),
    setType: async (name, change) => typeView(name, await written(store.setType(name, change))),
    clearType: async (name) => {
      await written(store.clearType(name));
      return typeView(name, undefined);
    },
  };
}
