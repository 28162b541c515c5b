import type { LimitChange, TenantChange, TypeLimitValues } from '@tasker/db';
import { MAX_LIMIT, taskNames } from '@tasker/tasks';
import { z } from 'zod';
import {
  BUDGETS_403,
  OTHER_TENANT_LIMITS,
  tenantLimitsSchema,
  typeLimitsViewSchema,
  UNKNOWN_TENANT,
} from '../limits-api.ts';
import { adminProcedure, operatorProcedure, router } from '../trpc.ts';
import { tenant } from './keys.ts';
import { restPage } from './schemas.ts';

/** A limit in a PUT: an integer from 0 to 1,000,000; null gives it back to the default; absent: unchanged. */
const limitInput = (what: string) =>
  z
    .number()
    .int()
    .min(0)
    .max(MAX_LIMIT)
    .nullable()
    .optional()
    .describe(`${what}: 0 to ${MAX_LIMIT}; null: back to the default; left out: unchanged`);

const limitsBody = {
  max_running: limitInput('At most this many tasks RUNNING at once, across every worker'),
  max_queued: limitInput(
    'A submission beyond this many tasks PENDING is refused (429, code QUEUE_FULL) and nothing is stored',
  ),
  starts_per_minute: limitInput('Task starts spread to at most this many per minute'),
};

/** Each limit of a PUT body, and the name the store knows it by. */
const CHANGE_FIELDS = {
  max_running: 'maxRunning',
  max_queued: 'maxQueued',
  starts_per_minute: 'startsPerMinute',
  max_running_per_key: 'maxRunningPerKey',
} as const satisfies Record<string, keyof TypeLimitValues>;
type ChangeField = keyof typeof CHANGE_FIELDS;

/** A PUT body's limits as the store takes them: one left out stays out (unchanged), null stays null (the default). */
function toChange(input: { [K in ChangeField]?: number | null }): LimitChange<TypeLimitValues> {
  const change: LimitChange<TypeLimitValues> = {};
  for (const [field, name] of Object.entries(CHANGE_FIELDS) as [ChangeField, keyof TypeLimitValues][]) {
    const value = input[field];
    if (value !== undefined) change[name] = value;
  }
  return change;
}

/** A tenant's LLM budgets in a PUT: null removes one; absent: unchanged. */
const budgetsBody = {
  llm_tokens_per_day: z
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .nullable()
    .optional()
    .describe(
      "LLM budget: tokens (prompt + completion) of the tenant's model calls per UTC day; null: none; left out: unchanged",
    ),
  llm_cost_per_month_usd: z
    .number()
    .min(0)
    .max(1_000_000_000)
    .nullable()
    .optional()
    .describe(
      "LLM budget: US dollars of the tenant's model calls per UTC month; null: none; left out: unchanged",
    ),
};

/** A tenant's PUT body as the store takes it: its limits and its budgets. */
function toTenantChange(
  input: { [K in ChangeField]?: number | null } & {
    llm_tokens_per_day?: number | null | undefined;
    llm_cost_per_month_usd?: number | null | undefined;
  },
): TenantChange {
  const change: TenantChange = toChange(input);
  if (input.llm_tokens_per_day !== undefined) change.llmTokensPerDay = input.llm_tokens_per_day;
  if (input.llm_cost_per_month_usd !== undefined) change.llmCostPerMonthUsd = input.llm_cost_per_month_usd;
  return change;
}

const tenantPath = tenant.describe('The tenant');
const typePath = z.enum(taskNames).describe('The task type (one of GET /task-types)');

/** The 403 of a tenant's limits, beyond a key without the scope. */
const TENANT_403 = `The API key lacks the admin scope (or operator); or an admin key naming another tenant ("${OTHER_TENANT_LIMITS}")`;
const OPERATOR_403 =
  "The API key lacks the operator scope: a task type's limits, and the list of tenants, are every tenant's";

/** How a change reaches every process. */
const WITHIN = 'It counts at once on this server and within 2 s on every server and worker.';

/**
 * Limits set at runtime: a tenant's (its `admin` key, or an `operator` key for any tenant) and a
 * task type's (an operator's: every tenant shares the type). Null in a limit: the default (the
 * environment's for a tenant, `defineTask({ limits })` for a type); unset there too: no limit.
 * `max_queued` is enforced at submission (429 QUEUE_FULL); `max_running`, `starts_per_minute` and
 * `max_running_per_key` by the dispatcher, when it hands tasks to the workers.
 */
export const limitsRouter = router({
  getTenantLimits: adminProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tenants/{tenant}/limits',
        summary: "A tenant's limits, and its running and queued tasks",
        description:
          'The limits set for the tenant at runtime (stored), the defaults of every tenant (the environment), what applies (effective), and how many of its tasks are RUNNING and PENDING now. ' +
          'A tenant with nothing set has the defaults. An admin key reads its own tenant; an operator key any.',
        tags: ['limits'],
        successDescription: "The tenant's limits and counts",
        errorResponses: { 400: 'A malformed tenant', 403: TENANT_403 },
      },
    })
    .input(z.object({ tenant: tenantPath }))
    .output(tenantLimitsSchema)
    .query(({ ctx, input }) => ctx.limits.getTenant(ctx.identity, input.tenant)),

  setTenantLimits: adminProcedure
    .meta({
      openapi: {
        method: 'PUT',
        path: '/tenants/{tenant}/limits',
        summary: "Set a tenant's limits",
        description:
          'Each field given is set (null: back to the default); a field left out stays as it is. ' +
          `max_queued is checked at every submission: beyond it, 429 with code QUEUE_FULL and nothing stored. ${WITHIN} ` +
          'The LLM budgets (llm_tokens_per_day, llm_cost_per_month_usd; UTC windows): once one is reached, a new task of an LLM type is refused (429 BUDGET_EXCEEDED, Retry-After: seconds until the window turns) and the queued ones are held PENDING until the window turns or the budget is raised. ' +
          "An admin key sets its own tenant's limits (not its budgets: an operator's); an operator key any tenant's that exists (has a key, a task or limits).",
        tags: ['limits'],
        successDescription: "The tenant's limits, as set, and counts",
        errorResponses: {
          400: `A limit that is not an integer from 0 to ${MAX_LIMIT} (or null), a negative budget, an unknown field, a malformed tenant, or a tenant nothing belongs to ("${UNKNOWN_TENANT}")`,
          403: `${TENANT_403}; or an LLM budget set without an operator key ("${BUDGETS_403}")`,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.strictObject({ tenant: tenantPath, ...limitsBody, ...budgetsBody }))
    .output(tenantLimitsSchema)
    .mutation(({ ctx, input }) => ctx.limits.setTenant(ctx.identity, input.tenant, toTenantChange(input))),

  clearTenantLimits: adminProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/tenants/{tenant}/limits',
        summary: "Clear a tenant's limits (back to the defaults)",
        description: `The tenant's limits set at runtime are removed: the defaults apply again. Its LLM budgets stay (an operator removes one by setting it null). ${WITHIN}`,
        tags: ['limits'],
        successDescription: "The tenant's limits, now the defaults, and counts",
        errorResponses: { 400: 'A malformed tenant', 403: TENANT_403 },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ tenant: tenantPath }))
    .output(tenantLimitsSchema)
    .mutation(({ ctx, input }) => ctx.limits.clearTenant(ctx.identity, input.tenant)),

  listTenants: operatorProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/tenants',
        summary: 'The tenants, with their limits and counts',
        description:
          'Every tenant with limits, API keys or tasks, by name, a page at a time (pass next_cursor back as cursor), each with its limits and its RUNNING and PENDING tasks. An operator key only.',
        tags: ['limits'],
        successDescription: 'A page of tenants',
        errorResponses: { 400: 'A limit out of range, or a malformed cursor', 403: OPERATOR_403 },
      },
    })
    .input(
      z.object({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(200)
          .default(50)
          .describe('Tenants per page, 1 to 200 (default 50)'),
        cursor: tenant.describe('The next_cursor of the previous page').optional(),
      }),
    )
    .output(
      z.object({
        tenants: z.array(tenantLimitsSchema),
        next_cursor: z
          .string()
          .nullable()
          .describe('Pass it as cursor for the next page; null: the last page'),
      }),
    )
    .query(async ({ ctx, input }) => restPage(await ctx.limits.listTenants(input))),

  getTypeLimits: operatorProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/task-types/{name}/limits',
        summary: "A task type's limits, and its running and queued tasks",
        description:
          "The limits set for the task type at runtime (stored), its defineTask defaults, what applies (effective), and how many of its tasks (every tenant's) are RUNNING and PENDING. An operator key only: every tenant shares a type.",
        tags: ['limits'],
        successDescription: "The task type's limits and counts",
        errorResponses: { 400: 'An unknown task type', 403: OPERATOR_403 },
      },
    })
    .input(z.object({ name: typePath }))
    .output(typeLimitsViewSchema)
    .query(({ ctx, input }) => ctx.limits.getType(input.name)),

  setTypeLimits: operatorProcedure
    .meta({
      openapi: {
        method: 'PUT',
        path: '/task-types/{name}/limits',
        summary: "Set a task type's limits",
        description:
          'Each field given is set (null: back to the defineTask default); a field left out stays as it is. ' +
          `max_running_per_key bounds each concurrency key of the type. ${WITHIN} An operator key only.`,
        tags: ['limits'],
        successDescription: "The task type's limits, as set, and counts",
        errorResponses: {
          400: `An unknown task type, a limit that is not an integer from 0 to ${MAX_LIMIT} (or null), or an unknown field`,
          403: OPERATOR_403,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(
      z.strictObject({
        name: typePath,
        ...limitsBody,
        max_running_per_key: limitInput(
          'At most this many tasks of the type RUNNING at once per concurrency key',
        ),
      }),
    )
    .output(typeLimitsViewSchema)
    .mutation(({ ctx, input }) => ctx.limits.setType(input.name, toChange(input))),

  clearTypeLimits: operatorProcedure
    .meta({
      openapi: {
        method: 'DELETE',
        path: '/task-types/{name}/limits',
        summary: "Clear a task type's limits (back to its defineTask defaults)",
        description: `The task type's limits set at runtime are removed: its defineTask defaults apply again. ${WITHIN}`,
        tags: ['limits'],
        successDescription: "The task type's limits, now its defaults, and counts",
        errorResponses: { 400: 'An unknown task type', 403: OPERATOR_403 },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(z.object({ name: typePath }))
    .output(typeLimitsViewSchema)
    .mutation(({ ctx, input }) => ctx.limits.clearType(input.name)),
});
