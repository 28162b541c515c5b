import type {
  BudgetValues,
  LimitStore,
  LimitValues,
  StoredTenantLimits,
  StoredTypeLimits,
  TypeLimitValues,
} from '@tasker/db';
import { getTaskDefinition } from '@tasker/tasks';
import { Budgets } from './budgets.ts';
import type { Env } from './config.ts';

export type { LimitValues, TypeLimitValues };

/** A cached read and when it was made. */
interface Entry<T> {
  value: T;
  at: number;
}

/** The limits of a tenant without a row of its own: the environment's (TENANT_MAX_RUNNING, ...). */
export function tenantLimitDefaults(
  env: Pick<Env, 'TENANT_MAX_RUNNING' | 'TENANT_MAX_QUEUED' | 'TENANT_STARTS_PER_MINUTE'>,
): LimitValues {
  return {
    maxRunning: env.TENANT_MAX_RUNNING ?? null,
    maxQueued: env.TENANT_MAX_QUEUED ?? null,
    startsPerMinute: env.TENANT_STARTS_PER_MINUTE ?? null,
  };
}

/** The limits a task type has in its `defineTask({ limits })`; an unknown type has none. */
export function typeLimitDefaults(name: string): TypeLimitValues {
  const limits = getTaskDefinition(name)?.limits ?? {};
  return {
    maxRunning: limits.maxRunning ?? null,
    maxQueued: limits.maxQueued ?? null,
    startsPerMinute: limits.startsPerMinute ?? null,
    maxRunningPerKey: limits.maxRunningPerKey ?? null,
  };
}

/** The effective limits: each field the stored value, else the default (null: no limit). */
export function effectiveLimits<T extends LimitValues>(stored: Partial<T> | undefined, defaults: T): T {
  const out = { ...defaults };
  for (const key of Object.keys(defaults) as (keyof T)[]) {
    const value = stored?.[key];
    if (value !== null && value !== undefined) out[key] = value as T[keyof T];
  }
  return out;
}

/**
 * The effective limits of tenants and task types, as every process reads them (the submissions'
 * `max_queued`, the dispatcher's `max_running`, `starts_per_minute` and `max_running_per_key`).
 *
 * A field is the value set at runtime (`tenant_limits`, `task_type_limits`), else the default: the
 * environment's for a tenant (`TENANT_MAX_RUNNING`, ...), the type's `defineTask({ limits })` for a
 * task type; null means no limit. Reads come from a copy at most `maxAgeMs` (1 s) old, so a change
 * made on any process takes effect everywhere within 2 s; `invalidate()` drops the copy (this
 * process's own changes count at once). Concurrent reads of one tenant share one query; when
 * PostgreSQL cannot be read, the last copy stands (and without one, the read fails).
 */
export class Limits {
  private readonly tenantCache = new Map<string, Entry<StoredTenantLimits | undefined>>();
  private readonly tenantLoads = new Map<string, Promise<Map<string, StoredTenantLimits | undefined>>>();
  private typeCache: Entry<Map<string, StoredTypeLimits>> | undefined;
  private typeLoad: Promise<Map<string, StoredTypeLimits>> | undefined;
  /** Moves on every invalidate(): a read begun before it does not fill the copy. */
  private generation = 0;
  /** The tenants' LLM budgets (set with their limits, read from the same copy) and their checks. */
  readonly budgets: Budgets = new Budgets(this);

  constructor(
    readonly store: LimitStore,
    /** A tenant's limits when it has no row (the environment's). */
    readonly tenantDefaults: LimitValues,
    private readonly options: { maxAgeMs?: number; maxTenants?: number } = {},
  ) {}

  private get maxAgeMs(): number {
    return this.options.maxAgeMs ?? 1000;
  }

  /** A tenant's effective limits. */
  async tenant(tenantId: string): Promise<LimitValues> {
    return (await this.tenants([tenantId])).get(tenantId) ?? this.tenantDefaults;
  }

  /** The effective limits of these tenants (one query for those not read within maxAgeMs). */
  async tenants(tenantIds: readonly string[]): Promise<Map<string, LimitValues>> {
    const stored = await this.storedTenants(tenantIds);
    const out = new Map<string, LimitValues>();
    for (const id of tenantIds) out.set(id, effectiveLimits(stored.get(id), this.tenantDefaults));
    return out;
  }

  /** The LLM budgets of these tenants, as set (null: none; no default), from the same copy. */
  async budgetValues(tenantIds: readonly string[]): Promise<Map<string, BudgetValues>> {
    const stored = await this.storedTenants(tenantIds);
    const out = new Map<string, BudgetValues>();
    for (const id of tenantIds) {
      const row = stored.get(id);
      out.set(id, {
        llmTokensPerDay: row?.llmTokensPerDay ?? null,
        llmCostPerMonthUsd: row?.llmCostPerMonthUsd ?? null,
      });
    }
    return out;
  }

  /** The stored rows of these tenants (undefined: none), from copies at most maxAgeMs old. */
  private async storedTenants(
    tenantIds: readonly string[],
  ): Promise<Map<string, StoredTenantLimits | undefined>> {
    const now = Date.now();
    const stored = new Map<string, StoredTenantLimits | undefined>();
    const stale: string[] = [];
    for (const id of new Set(tenantIds)) {
      const entry = this.tenantCache.get(id);
      if (entry && now - entry.at <= this.maxAgeMs) stored.set(id, entry.value);
      else stale.push(id);
    }
    if (stale.length > 0) {
      const toLoad = stale.filter((id) => !this.tenantLoads.has(id));
      if (toLoad.length > 0) {
        const load = this.loadTenants(toLoad);
        for (const id of toLoad) this.tenantLoads.set(id, load);
        void load
          .catch(() => {})
          .finally(() => {
            for (const id of toLoad) if (this.tenantLoads.get(id) === load) this.tenantLoads.delete(id);
          });
      }
      const loads = [...new Set(stale.map((id) => this.tenantLoads.get(id)))];
      for (const loaded of await Promise.all(loads))
        for (const [id, row] of loaded ?? []) if (stale.includes(id)) stored.set(id, row);
    }
    return stored;
  }

  /** The rows of these tenants (undefined: none), kept as the copy unless invalidated meanwhile. */
  private async loadTenants(ids: string[]): Promise<Map<string, StoredTenantLimits | undefined>> {
    const generation = this.generation;
    let rows: StoredTenantLimits[];
    try {
      rows = await this.store.getTenants(ids);
    } catch (error) {
      // The last copy stands; a tenant never read has none to stand on.
      if (ids.some((id) => !this.tenantCache.has(id))) throw error;
      return new Map(ids.map((id) => [id, this.tenantCache.get(id)?.value]));
    }
    const byTenant = new Map(rows.map((row) => [row.tenantId, row]));
    const loaded = new Map(ids.map((id) => [id, byTenant.get(id)]));
    if (generation === this.generation) {
      const at = Date.now();
      for (const [id, row] of loaded) {
        this.tenantCache.delete(id); // re-inserted last: the oldest reads are dropped first
        this.tenantCache.set(id, { value: row, at });
      }
      this.bound();
    }
    return loaded;
  }

  /** A task type's effective limits (its runtime row over its `defineTask` defaults). */
  async type(name: string): Promise<TypeLimitValues> {
    return effectiveLimits((await this.storedTypes()).get(name), typeLimitDefaults(name));
  }

  /** Every stored task type row, by name (the table holds one per type at most). */
  private storedTypes(): Promise<Map<string, StoredTypeLimits>> {
    if (this.typeCache && Date.now() - this.typeCache.at <= this.maxAgeMs)
      return Promise.resolve(this.typeCache.value);
    if (!this.typeLoad) {
      const generation = this.generation;
      const load = this.store.listTypes().then(
        (rows) => {
          const value = new Map(rows.map((row) => [row.name, row]));
          if (generation === this.generation) this.typeCache = { value, at: Date.now() };
          return value;
        },
        (error: unknown) => {
          if (!this.typeCache) throw error;
          return this.typeCache.value;
        },
      );
      this.typeLoad = load;
      void load
        .catch(() => {})
        .finally(() => {
          if (this.typeLoad === load) this.typeLoad = undefined;
        });
    }
    return this.typeLoad;
  }

  /** Forgets every copy: the next read of each limit goes to PostgreSQL. */
  invalidate(): void {
    this.generation++;
    this.tenantCache.clear();
    this.tenantLoads.clear();
    this.typeCache = undefined;
    this.typeLoad = undefined;
  }

  /** At most maxTenants copies (10,000): the least recently read go first. */
  private bound(): void {
    const max = this.options.maxTenants ?? 10_000;
    for (const id of this.tenantCache.keys()) {
      if (this.tenantCache.size <= max) break;
      this.tenantCache.delete(id);
    }
  }
}
