import type { TRPCClient } from '@trpc/client';
import { TaskerValidationError, toTaskerError } from './errors.ts';
import type { AppRouter, TaskName, WireInputs, WireOutputs } from './types.ts';

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

/** A page of `tenants.list()`: tenants by name, each with its limits and counts. */
export interface TenantPage {
  tenants: TenantLimits[];
  /** Pass it as `cursor` for the next page; `null` on the last page. */
  nextCursor: string | null;
}

export interface TenantListOptions {
  /** Tenants per page, 1 to 200 (default 50). */
  limit?: number;
  /** The `nextCursor` of the previous page. */
  cursor?: string;
}

/** A tenant's limits: its own with an `admin` key, any tenant's with an `operator` key. */
export interface TenantLimitsApi {
  get(tenant: string): Promise<TenantLimits>;
  /** Takes effect on every server and worker within 2 s. */
  set(tenant: string, limits: LimitsInput): Promise<TenantLimits>;
  /** Back to the defaults. */
  clear(tenant: string): Promise<TenantLimits>;
}

export interface TenantsApi {
  /** Every tenant with limits, keys or tasks, with its limits and counts (an `operator` key). */
  list(options?: TenantListOptions): Promise<TenantPage>;
  limits: TenantLimitsApi;
}

/** A task type's limits, shared by every tenant: an `operator` key. */
export interface TypesApi {
  limits: {
    get(name: TaskName): Promise<TaskTypeLimits>;
    set(name: TaskName, limits: TypeLimitsInput): Promise<TaskTypeLimits>;
    clear(name: TaskName): Promise<TaskTypeLimits>;
  };
}

type TypeWire = Omit<WireInputs['setTypeLimits'], 'name'>;

/** Each limit and the router's name for it (checked against the router: a rename is a compile error). */
const LIMIT_FIELDS = {
  maxRunning: 'max_running',
  maxQueued: 'max_queued',
  startsPerMinute: 'starts_per_minute',
  maxRunningPerKey: 'max_running_per_key',
} as const satisfies { [K in keyof Required<TypeLimitsInput>]: keyof TypeWire };

/** The wire's fields, from the caller's: an unknown one is refused here, naming it. */
function limitsToWire(limits: TypeLimitsInput, fields: readonly (keyof TypeLimitsInput)[]): TypeWire {
  const unknown = Object.keys(limits).filter((key) => !fields.includes(key as keyof TypeLimitsInput));
  if (unknown.length > 0) {
    const issues = unknown.map((key) => ({ path: key, message: `Unknown limit "${key}"` }));
    throw new TaskerValidationError(issues.map((i) => i.message).join('; '), issues);
  }
  const wire: Record<string, number | null | undefined> = {};
  for (const field of fields) if (limits[field] !== undefined) wire[LIMIT_FIELDS[field]] = limits[field];
  return wire as TypeWire;
}

/** The router's field names in a refusal, as the caller wrote them (`max_queued` → `maxQueued`). */
function renamed(error: unknown): unknown {
  const tasker = toTaskerError(error);
  if (!(tasker instanceof TaskerValidationError)) return tasker;
  const camel = new Map(Object.entries(LIMIT_FIELDS).map(([k, v]) => [v as string, k]));
  for (const issue of tasker.issues) issue.path = camel.get(issue.path) ?? issue.path;
  return tasker;
}

async function call<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (error) {
    throw renamed(error);
  }
}

const TENANT_LIMITS = ['maxRunning', 'maxQueued', 'startsPerMinute'] as const;

/** `tenants` and `types` of the client. */
export function limitsClient(trpc: TRPCClient<AppRouter>): { tenants: TenantsApi; types: TypesApi } {
  return {
    tenants: {
      list: async (options = {}) => {
        const page = await call(trpc.listTenants.query({ limit: options.limit, cursor: options.cursor }));
        return { tenants: page.tenants, nextCursor: page.next_cursor };
      },
      limits: {
        get: (tenant) => call(trpc.getTenantLimits.query({ tenant })),
        set: async (tenant, limits) =>
          call(trpc.setTenantLimits.mutate({ tenant, ...limitsToWire(limits, TENANT_LIMITS) })),
        clear: (tenant) => call(trpc.clearTenantLimits.mutate({ tenant })),
      },
    },
    types: {
      limits: {
        get: (name) => call(trpc.getTypeLimits.query({ name })),
        set: async (name, limits) =>
          call(
            trpc.setTypeLimits.mutate({
              name,
              ...limitsToWire(limits, [...TENANT_LIMITS, 'maxRunningPerKey']),
            }),
          ),
        clear: (name) => call(trpc.clearTypeLimits.mutate({ name })),
      },
    },
  };
}
