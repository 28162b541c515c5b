import type { TaskName, WireInputs, WireOutputs } from './types.ts';

/**
 * A tenant's limits to set: a field given is set (an integer from 0 to 1,000,000), `null` gives it
 * back to the default (the server's `TENANT_MAX_*`), a field left out stays as it is.
 */
export interface LimitsInput {
  /** At most this many of the tenant's (or type's) tasks RUNNING at once, across every worker. */
  maxRunning?: number | null;
  /** A submission beyond this many tasks PENDING is refused: `run()` rejects with TaskerQueueFullError. */
  maxQueued?: number | null;
  /** Task starts spread to at most this many per minute. */
  startsPerMinute?: number | null;
}

/**
 * A tenant's limits and LLM budgets to set (UTC windows): a budget given is set, `null` removes it,
 * left out it stays. Over a budget, `run()` of a task type that calls a model rejects with
 * TaskerBudgetExceededError and the tenant's queued LLM tasks wait (held) until the window turns or
 * the budget is raised.
 */
export interface TenantLimitsInput extends LimitsInput {
  /** Tokens (prompt + completion) of the tenant's model calls per UTC day. */
  llmTokensPerDay?: number | null;
  /** US dollars of the tenant's model calls per UTC month. */
  llmCostPerMonthUsd?: number | null;
}

/** A task type's limits to set: a tenant's three, and one per concurrency key. */
export interface TypeLimitsInput extends LimitsInput {
  /** At most this many tasks of the type RUNNING at once per concurrency key. */
  maxRunningPerKey?: number | null;
}

/**
 * A tenant's limits as the server has them: `stored` (set at runtime; null where nothing is set),
 * `defaults` (the server's), `effective` (what applies; null: no limit), `updatedAt`, and how many
 * of its tasks are `running` and `queued` (PENDING) now.
 */
export type TenantLimits = WireOutputs['getTenantLimits'];
/** A task type's limits as the server has them (its defaults: its `defineTask({ limits })`). */
export type TaskTypeLimits = WireOutputs['getTypeLimits'];

type TenantPageWire = WireOutputs['listTenants'];
/**
 * A page of `tenants.list()`: `tenants` by name, each with its limits and counts, and `nextCursor`
 * (pass it as `cursor` for the next page; `null` on the last page).
 */
export type TenantPage = Omit<TenantPageWire, 'next_cursor'> & { nextCursor: TenantPageWire['next_cursor'] };

/**
 * `tenants.list(options)`: `limit`, tenants per page, 1 to 200 (default 50); `cursor`, the
 * `nextCursor` of the previous page. The router's own fields; its `limit` is coerced from any value
 * (a REST query string), the SDK's is a number.
 */
export type TenantListOptions = Omit<WireInputs['listTenants'], 'limit'> & { limit?: number };

/** Limits set at runtime on one holder (a tenant, a task type), named by `Key`. */
export interface LimitsApi<Key extends string, Input, View> {
  /** The limits stored, the defaults, what applies, and the tasks running and queued now. */
  get(key: Key): Promise<View>;
  /** Each field given is set (`null`: back to the default). Takes effect on every server and worker within 2 s. */
  set(key: Key, limits: Input): Promise<View>;
  /** Every limit back to the defaults. */
  clear(key: Key): Promise<View>;
}

/** A tenant's limits: its own with an `admin` key, any tenant's with an `operator` key. */
export type TenantLimitsApi = LimitsApi<string, TenantLimitsInput, TenantLimits>;
/** A task type's limits, shared by every tenant: an `operator` key. */
export type TypeLimitsApi = LimitsApi<TaskName, TypeLimitsInput, TaskTypeLimits>;

export interface TenantsApi {
  /** Every tenant with limits, keys or tasks, with its limits and counts (an `operator` key). */
  list(options?: TenantListOptions): Promise<TenantPage>;
  limits: TenantLimitsApi;
}

export interface TypesApi {
  limits: TypeLimitsApi;
}
