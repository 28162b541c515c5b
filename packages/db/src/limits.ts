import { and, asc, eq, sql } from 'drizzle-orm';
import type { Database } from './client.ts';
import {
  apiKeys,
  type TaskTypeLimitsRow,
  type TenantLimitsRow,
  tasks,
  taskTypeLimits,
  tenantLimits,
} from './schema.ts';
import { pgArray } from './tasks/rows.ts';

/**
 * The limits of one holder (a tenant, a task type). Null: none set here (the default applies: the
 * environment's for a tenant, `defineTask({ limits })` for a task type; unlimited when that is unset).
 */
export interface LimitValues {
  /** At most this many of its tasks RUNNING at once, across every worker. */
  maxRunning: number | null;
  /** A submission beyond this many of its tasks PENDING is refused (429 QUEUE_FULL), nothing stored. */
  maxQueued: number | null;
  /** Its task starts are spread to at most this many per minute. */
  startsPerMinute: number | null;
}

/** A task type's limits: a tenant's three, and `maxRunningPerKey` for each concurrency key of the type. */
export interface TypeLimitValues extends LimitValues {
  maxRunningPerKey: number | null;
}

/** What a set (PUT) changes: a field left out stays as it is; null gives it back to the default. */
export type LimitChange<T extends LimitValues = LimitValues> = Partial<T>;

/** A tenant's LLM budgets (UTC windows); null: none. */
export interface BudgetValues {
  /** Tokens (prompt + completion) of its model calls per UTC day. */
  llmTokensPerDay: number | null;
  /** US dollars of its model calls per UTC month. */
  llmCostPerMonthUsd: number | null;
}

/** A tenant's set: its limits and its budgets, each field given or left as it is. */
export type TenantChange = LimitChange & Partial<BudgetValues>;

/** What a tenant's model calls used in its budgets' windows. */
export interface BudgetSpend {
  /** Tokens (prompt + completion) since the UTC day began. */
  tokensToday: number;
  /** US dollars since the UTC month began. */
  costThisMonthUsd: number;
}

/** A read of the spend: the dollars only when asked for (undefined: not read). */
export interface SpendRead {
  tokensToday: number;
  costThisMonthUsd: number | undefined;
}

/** How many of a holder's tasks are RUNNING and PENDING, each counted up to a cap. */
export interface TaskCounts {
  running: number;
  queued: number;
}

export type StoredTenantLimits = TenantLimitsRow;
export type StoredTypeLimits = TaskTypeLimitsRow;

/** The most a count of `countsOf` reads (a count at the cap means "at least that many"). */
export const COUNT_CAP = 100_000;

const TENANT_FIELDS = ['maxRunning', 'maxQueued', 'startsPerMinute'] as const;
const TYPE_FIELDS = [...TENANT_FIELDS, 'maxRunningPerKey'] as const;
const BUDGET_FIELDS = ['llmTokensPerDay', 'llmCostPerMonthUsd'] as const;

/** Only the fields given (null included), for an upsert that leaves the others as they are. */
function given<T extends object>(change: T, fields: readonly (keyof T)[]): Partial<T> {
  const out: Partial<T> = {};
  for (const field of fields) if (change[field] !== undefined) out[field] = change[field];
  return out;
}

/**
 * The limits set at runtime (`tenant_limits`, `task_type_limits`): read, set (an upsert of the
 * fields given), clear (back to the defaults), and the tenants there are (with limits or tasks), with
 * their counts of running and queued tasks. What a limit means and the defaults under it are the
 * engine's (`@tasker/engine` limits.ts); this is storage only.
 */
export class LimitStore {
  constructor(private readonly db: Database) {}

  async getTenant(tenantId: string): Promise<StoredTenantLimits | undefined> {
    const [row] = await this.db.select().from(tenantLimits).where(eq(tenantLimits.tenantId, tenantId));
    return row;
  }

  /** The stored rows of these tenants (those without a row are absent). */
  async getTenants(tenantIds: readonly string[]): Promise<StoredTenantLimits[]> {
    if (tenantIds.length === 0) return [];
    return this.db
      .select()
      .from(tenantLimits)
      .where(sql`${tenantLimits.tenantId} = any(${pgArray(tenantIds)}::text[])`);
  }

  /** Sets the fields given (null: back to the default), leaving the others; creates the row if needed. */
  async setTenant(tenantId: string, change: TenantChange): Promise<StoredTenantLimits> {
    const values = given(change, [...TENANT_FIELDS, ...BUDGET_FIELDS]);
    const [row] = await this.db
      .insert(tenantLimits)
      .values({ tenantId, ...values })
      .onConflictDoUpdate({ target: tenantLimits.tenantId, set: { ...values, updatedAt: sql`now()` } })
      .returning();
    if (!row) throw new Error('upsert returned no row');
    return row;
  }

  /**
   * The tenant's limits back to the defaults; its LLM budgets stay (an operator removes one by
   * setting it null). Its row goes once nothing is left in it. The row as it now is, or undefined.
   */
  async clearTenant(tenantId: string): Promise<StoredTenantLimits | undefined> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .update(tenantLimits)
        .set({ maxRunning: null, maxQueued: null, startsPerMinute: null, updatedAt: sql`now()` })
        .where(eq(tenantLimits.tenantId, tenantId))
        .returning();
      if (!row || row.llmTokensPerDay !== null || row.llmCostPerMonthUsd !== null) return row;
      await tx.delete(tenantLimits).where(eq(tenantLimits.tenantId, tenantId));
      return undefined;
    });
  }

  /**
   * What the tenant's model calls used since `dayStart` (tokens) and, when `monthStart` is given,
   * since then (dollars; a call cached or without a price adds nothing): one walk of the tenant's
   * ledger rows (`task_llm_calls_tenant_created_idx`) from the earlier of the two. Without
   * `monthStart` (a tenant with a day budget only) the walk starts at the day's start, and the
   * dollars are not read (undefined). Uncached: `Budgets` keeps and shares the answers.
   */
  async spend(tenantId: string, dayStart: Date, monthStart?: Date): Promise<SpendRead> {
    // A month starts no later than its days.
    const since = monthStart ?? dayStart;
    const cost = monthStart
      ? sql`(sum(cost_usd) filter (where created_at >= ${monthStart.toISOString()} and not cached))::text`
      : sql`null::text`;
    const [row] = await this.db.execute<{ tokens: string | null; cost: string | null }>(sql`
      select (sum(prompt_tokens + completion_tokens) filter (where created_at >= ${dayStart.toISOString()} and not cached))::text as tokens,
             ${cost} as cost
      from task_llm_calls
      where tenant_id = ${tenantId} and created_at >= ${since.toISOString()}`);
    return {
      tokensToday: Number(row?.tokens ?? 0),
      costThisMonthUsd: monthStart ? Math.round(Number(row?.cost ?? 0) * 1e10) / 1e10 : undefined,
    };
  }

  async getType(name: string): Promise<StoredTypeLimits | undefined> {
    const [row] = await this.db.select().from(taskTypeLimits).where(eq(taskTypeLimits.name, name));
    return row;
  }

  /** Every task type's stored row (at most one per type of the catalog). */
  listTypes(): Promise<StoredTypeLimits[]> {
    return this.db.select().from(taskTypeLimits).orderBy(asc(taskTypeLimits.name));
  }

  async setType(name: string, change: LimitChange<TypeLimitValues>): Promise<StoredTypeLimits> {
    const values = given(change, TYPE_FIELDS);
    const [row] = await this.db
      .insert(taskTypeLimits)
      .values({ name, ...values })
      .onConflictDoUpdate({ target: taskTypeLimits.name, set: { ...values, updatedAt: sql`now()` } })
      .returning();
    if (!row) throw new Error('upsert returned no row');
    return row;
  }

  async clearType(name: string): Promise<boolean> {
    const rows = await this.db
      .delete(taskTypeLimits)
      .where(eq(taskTypeLimits.name, name))
      .returning({ name: taskTypeLimits.name });
    return rows.length > 0;
  }

  /**
   * Whether the tenant is known: it has limits, an API key or a task. Each a lookup by the first
   * column of an index.
   */
  async tenantExists(tenantId: string): Promise<boolean> {
    const [row] = await this.db.execute<{ known: boolean }>(sql`
      select exists (select 1 from ${tenantLimits} where ${tenantLimits.tenantId} = ${tenantId})
          or exists (select 1 from ${apiKeys} where ${apiKeys.tenantId} = ${tenantId})
          or exists (select 1 from ${tasks} where ${tasks.tenantId} = ${tenantId}) as known`);
    return Boolean(row?.known);
  }

  /**
   * The tenants there are (with stored limits, API keys or tasks), in the database's order of
   * names, after `after`, at most `limit`. The tenants of the tasks table are read by a skip scan
   * over its (owner_id, ...) index: one index probe per tenant, whatever the number of tasks.
   */
  async listTenants(limit: number, after = ''): Promise<string[]> {
    const rows = await this.db.execute<{ tenant: string }>(sql`
      with recursive owners(owner_id) as (
        (select owner_id from tasks where owner_id > ${after} order by owner_id limit 1)
        union all
        select (select t.owner_id from tasks t where t.owner_id > o.owner_id order by t.owner_id limit 1)
        from owners o where o.owner_id is not null
      )
      select tenant from (
        (select owner_id as tenant from owners where owner_id is not null limit ${limit})
        union
        (select tenant_id from tenant_limits where tenant_id > ${after} order by tenant_id limit ${limit})
        union
        (select distinct tenant_id from api_keys where tenant_id > ${after} order by tenant_id limit ${limit})
      ) known
      order by tenant limit ${limit}`);
    return rows.map((row) => row.tenant);
  }

  /**
   * RUNNING and PENDING tasks of each tenant, each counted up to `cap` (an index-only walk of
   * tasks_owner_status_created_idx, stopped at the cap).
   */
  async countsOf(tenantIds: readonly string[], cap = COUNT_CAP): Promise<Map<string, TaskCounts>> {
    const counts = new Map<string, TaskCounts>();
    if (tenantIds.length === 0) return counts;
    const rows = await this.db.execute<{ tenant: string; running: number; queued: number }>(sql`
      select o.tenant,
        (select count(*)::int from (select 1 from tasks t where t.owner_id = o.tenant and t.status = 'RUNNING' limit ${cap}) r) as running,
        (select count(*)::int from (select 1 from tasks t where t.owner_id = o.tenant and t.status = 'PENDING' limit ${cap}) q) as queued
      from unnest(${pgArray(tenantIds)}::text[]) as o(tenant)`);
    for (const row of rows) counts.set(row.tenant, { running: row.running, queued: row.queued });
    return counts;
  }

  /** The same of every tenant of a task type together (no index leads with the type: read only on demand). */
  async countsOfType(name: string, cap = COUNT_CAP): Promise<TaskCounts> {
    const [row] = await this.db.execute<{ running: number; queued: number }>(sql`
      select
        (select count(*)::int from (select 1 from ${tasks} where ${and(eq(tasks.name, name), eq(tasks.status, 'RUNNING'))} limit ${cap}) r) as running,
        (select count(*)::int from (select 1 from ${tasks} where ${and(eq(tasks.name, name), eq(tasks.status, 'PENDING'))} limit ${cap}) q) as queued`);
    return { running: row?.running ?? 0, queued: row?.queued ?? 0 };
  }
}
