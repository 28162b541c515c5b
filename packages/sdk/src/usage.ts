import type { WireInputs, WireOutputs } from './types.ts';

/**
 * What `usage()` reports: the tenant (null: every tenant), the range [from, to), how it is
 * grouped, one row per group (`key`: a UTC day, a task type, a model or a tenant, with
 * `prompt_tokens`, `completion_tokens`, `cost_usd`, `calls`, `tasks`) and the range's `total`.
 */
export type UsageReport = WireOutputs['getUsage'];
/** One group of a usage report. */
export type UsageRow = UsageReport['rows'][number];
/** What a usage report groups by. */
export type UsageGroup = UsageReport['group_by'];

/**
 * `usage(options)`: `from` and `to` (a date such as `2026-12-01`, a date-time with an offset, or a
 * Date; `to` excluded, a date alone counting its whole UTC day; default the last 30 days, at most
 * 366), `groupBy` (`day`, the default; `task_type`, `model`, `tenant`) and `tenant` (another
 * tenant's, or `*` for every tenant's: an `operator` key).
 */
export interface UsageOptions {
  from?: string | Date;
  to?: string | Date;
  groupBy?: UsageGroup;
  tenant?: string;
}

const instant = (value: string | Date | undefined) => (value instanceof Date ? value.toISOString() : value);

export function usageOptionsToWire(options: UsageOptions): WireInputs['getUsage'] {
  const wire: WireInputs['getUsage'] = {};
  const from = instant(options.from);
  const to = instant(options.to);
  if (from !== undefined) wire.from = from;
  if (to !== undefined) wire.to = to;
  if (options.groupBy !== undefined) wire.group_by = options.groupBy;
  if (options.tenant !== undefined) wire.tenant = options.tenant;
  return wire;
}
