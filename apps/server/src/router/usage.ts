import { USAGE_GROUPS } from '@tasker/db';
import { z } from 'zod';
import { budgetsSchema } from '../limits-api.ts';
import { readProcedure, router } from '../trpc.ts';
import { OTHER_TENANT_USAGE } from '../usage-api.ts';
import { tenant } from './keys.ts';
import { DAY_MS } from './schemas.ts';

/** The longest range a report covers. */
export const USAGE_MAX_DAYS = 366;
/** The range when `from` is not given: this many days up to `to` (today included). */
export const USAGE_DEFAULT_DAYS = 30;

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** An instant from a date (`2026-12-01`: that UTC day) or a date-time with an offset; undefined if neither. */
function parseInstant(text: string): Date | undefined {
  if (!DATE_ONLY.test(text) && !DATE_TIME.test(text)) return undefined;
  const at = Date.parse(DATE_ONLY.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(at)) return undefined;
  const date = new Date(at);
  // 2026-02-31 parses as March 3rd: refused, the date must be one of the calendar's.
  if (DATE_ONLY.test(text) && date.toISOString().slice(0, 10) !== text) return undefined;
  // Years PostgreSQL and the answer's ISO dates both hold (year 0 is none of PostgreSQL's; a `to`
  // in 9999 ends in year 10000, which an ISO date-time cannot write): outside, a 400, not a 500.
  const year = date.getUTCFullYear();
  if (year < 1970 || year > 9998) return undefined;
  return date;
}

const instant = (what: string) =>
  z
    .string()
    .max(40)
    .refine((text) => parseInstant(text) !== undefined, {
      error:
        'expected a date (2026-12-01) or a date-time with an offset (2026-12-01T08:00:00Z), years 1970 to 9998',
    })
    .describe(what);

const rowFields = {
  prompt_tokens: z.number().int().describe('Prompt tokens of the calls'),
  completion_tokens: z.number().int().describe('Completion tokens of the calls'),
  cost_usd: z
    .number()
    .describe("US dollars of the calls, from the workers' price table (a model without a price counts 0)"),
  calls: z.number().int().describe('Model calls that reported usage'),
  tasks: z.number().int().describe('Distinct tasks that made them'),
};

const usageRowSchema = z
  .object({
    key: z
      .string()
      .describe('The group: a UTC day (2026-12-03), a task type, a model or a tenant, as group_by says'),
    ...rowFields,
  })
  .meta({ id: 'UsageRow' });

export const usageReportSchema = z
  .object({
    tenant: z
      .string()
      .nullable()
      .describe('The tenant reported; null: every tenant (tenant=*, an operator key)'),
    from: z.iso.datetime({ offset: true }).describe('The first instant counted'),
    to: z.iso.datetime({ offset: true }).describe('The instant the report stops at (excluded)'),
    group_by: z.enum(USAGE_GROUPS),
    rows: z
      .array(usageRowSchema)
      .describe('One per group, by key; by day: every UTC day of the range, zeros included'),
    total: z.object(rowFields).describe('The whole range'),
    budgets: budgetsSchema
      .nullable()
      .describe(
        "The tenant's LLM budgets, its spend in their windows, and whether its LLM tasks are held now (exceeded, heldUntil); null for every tenant's report",
      ),
  })
  .meta({ id: 'UsageReport' });

const usageInput = z
  .object({
    from: instant(
      `The first instant counted: a date (its UTC midnight) or a date-time; default ${USAGE_DEFAULT_DAYS - 1} days before to's day, at midnight UTC`,
    ).optional(),
    to: instant(
      'Where the report stops (excluded): a date counts that whole UTC day, a date-time stops at it; default now',
    ).optional(),
    group_by: z
      .enum(USAGE_GROUPS)
      .default('day')
      .describe('day (UTC), task_type, model, or tenant (default day)'),
    tenant: z
      .union([tenant, z.literal('*')])
      .describe(
        "The tenant to report: default the caller's; another tenant, or * for every tenant, needs an operator key",
      )
      .optional(),
  })
  .superRefine((input, ctx) => {
    const range = rangeOf(input);
    if (range === undefined) return; // a field that is no date: its own issue says so
    // As given: a date `to` is its day's midnight here (from=2026-12-02&to=2026-12-01 is refused).
    const givenTo = input.to === undefined ? range.to : (parseInstant(input.to) as Date);
    if (range.from.getTime() > givenTo.getTime()) {
      ctx.addIssue({ code: 'custom', path: ['from'], message: 'must not be after to' });
    } else if (range.to.getTime() - range.from.getTime() > USAGE_MAX_DAYS * DAY_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['from'],
        message: `the range from from to to may cover at most ${USAGE_MAX_DAYS} days`,
      });
    }
  });

/**
 * The range a report covers, [from, to): `to` a date-time, or the end of its UTC day for a date
 * (default now); `from` a date-time, or its UTC midnight (default USAGE_DEFAULT_DAYS days ending
 * with to's). Undefined when either is no date.
 */
function rangeOf(input: {
  from?: string | undefined;
  to?: string | undefined;
}): { from: Date; to: Date } | undefined {
  const toAt = input.to === undefined ? new Date() : parseInstant(input.to);
  const fromAt = input.from === undefined ? undefined : parseInstant(input.from);
  if (toAt === undefined || (input.from !== undefined && fromAt === undefined)) return undefined;
  const to = input.to !== undefined && DATE_ONLY.test(input.to) ? new Date(toAt.getTime() + DAY_MS) : toAt;
  const from =
    fromAt ??
    new Date(
      Date.parse(new Date(to.getTime() - 1).toISOString().slice(0, 10)) - (USAGE_DEFAULT_DAYS - 1) * DAY_MS,
    );
  return { from, to };
}

/** What a tenant's model calls used: tokens, dollars, calls and tasks, by day, task type, model or tenant. */
export const usageRouter = router({
  getUsage: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/usage',
        summary: "The tenant's model usage: tokens, cost, calls and tasks, grouped",
        description:
          "What the model calls of the tenant's tasks (ctx.llm) used in a range, from the ledger of calls (task_llm_calls, which outlives the tasks), " +
          `grouped by UTC day (every day of the range, zeros included), task type, model or tenant. The range is at most ${USAGE_MAX_DAYS} days; ` +
          `default the last ${USAGE_DEFAULT_DAYS} days. A key reads its own tenant's; an operator key any tenant's, or every tenant's with tenant=*.`,
        tags: ['usage'],
        successDescription: 'The report',
        errorResponses: {
          400: 'A from or to that is no date, from after to, a range over 366 days, an unknown group_by, or a malformed tenant',
          403: `The API key lacks the tasks:read scope; or it names another tenant without the operator scope ("${OTHER_TENANT_USAGE}")`,
        },
        unavailable: 'PostgreSQL is unavailable',
      },
    })
    .input(usageInput)
    .output(usageReportSchema)
    .query(({ ctx, input }) => {
      // Checked by the input's refinement: both are dates, from not after to, within the bound.
      const range = rangeOf(input) as { from: Date; to: Date };
      return ctx.usage.report(ctx.identity, { ...range, groupBy: input.group_by, tenant: input.tenant });
    }),
});
