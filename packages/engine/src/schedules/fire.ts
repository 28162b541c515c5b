import type { FireResult, PlannedFire, ScheduleRow, ScheduleStore } from '@tasker/db';
import { getTaskDefinition } from '@tasker/tasks';
import type { Limits } from '../limits.ts';
import { type Cron, nextFire, parseCron } from './cron.ts';

/** How a firing pass treats late ticks. */
export interface FireOptions {
  /** A tick more than this late is missed: its schedule's catch_up decides (SCHEDULE_GRACE_MS). */
  graceMs: number;
  /** catch_up all: at most this many missed ticks (the latest) fire (SCHEDULE_CATCH_UP_MAX). */
  catchUpMax: number;
}

/** The most ticks one schedule fires in one pass that are not late (a 1 s cron within the grace). */
const ON_TIME_MAX = 1000;

const crons = new Map<string, Cron>();
function cronOf(source: string): Cron {
  let cron = crons.get(source);
  if (!cron) {
    cron = parseCron(source);
    if (crons.size > 1000) crons.clear();
    crons.set(source, cron);
  }
  return cron;
}

/** The ticks of `cron` in [from, to] (from included), at most `max`, oldest first. */
function ticksBetween(cron: Cron, zone: string, from: Date, to: Date, max: number): Date[] {
  const ticks: Date[] = [];
  let t = nextFire(cron, zone, new Date(from.getTime() - 1));
  while (t && t <= to && ticks.length < max) {
    ticks.push(t);
    t = nextFire(cron, zone, t);
  }
  return ticks;
}

/**
 * The latest `count` ticks before `before` (excluded) and from `from` on, oldest first: windows
 * that double backwards from `before` until they hold enough, so a schedule down for a month costs
 * a few windows, not a month of ticks.
 */
function latestTicks(cron: Cron, zone: string, from: Date, before: Date, count: number): Date[] {
  for (let windowMs = 60_000; ; windowMs *= 2) {
    const start = new Date(Math.max(from.getTime(), before.getTime() - windowMs));
    const found: Date[] = [];
    let t = nextFire(cron, zone, new Date(start.getTime() - 1));
    while (t && t < before) {
      found.push(t);
      if (found.length > count) found.shift();
      t = nextFire(cron, zone, t);
    }
    if (found.length >= count || start.getTime() === from.getTime()) return found;
  }
}

/**
 * Which ticks of a due schedule fire now (a pure function of the row, the time and the options):
 * - a tick at most `graceMs` late is on time and fires;
 * - older ones were missed (nothing fired them: every worker was down): `catch_up` none drops them,
 *   latest fires the latest of them, all fires them, at most `catchUpMax` (the latest);
 * and the next tick after `now`. A task type gone from the catalog fires nothing: its ticks are
 * recorded skipped (UNKNOWN_TYPE).
 */
export function planFire(schedule: ScheduleRow, now: Date, options: FireOptions): PlannedFire {
  const cron = cronOf(schedule.cron);
  const zone = schedule.timezone;
  const due = schedule.nextFireAt ?? now;
  const late = new Date(now.getTime() - options.graceMs);
  const missed =
    due < late && schedule.catchUp !== 'none'
      ? latestTicks(cron, zone, due, late, schedule.catchUp === 'latest' ? 1 : options.catchUpMax)
      : [];
  const onTime = ticksBetween(cron, zone, due < late ? late : due, now, ON_TIME_MAX);
  const ticks = [...missed, ...onTime];
  const nextFireAt = nextFire(cron, zone, onTime.at(-1) ?? now) ?? null;
  const definition = getTaskDefinition(schedule.name);
  if (!definition) {
    return { schedule, ticks, nextFireAt, maxAttempts: 1, ttlMs: null, skipAll: 'UNKNOWN_TYPE' };
  }
  return {
    schedule,
    ticks,
    nextFireAt,
    maxAttempts: schedule.maxAttempts ?? definition.retry.attempts,
    ttlMs: schedule.ttlMs ?? definition.ttlMs ?? null,
  };
}

/** Due schedules one transaction takes. */
const BATCH = 50;

/** How long a schedule this worker cannot plan waits before it is tried again. */
const UNPLANNABLE_RETRY_MS = 60_000;

/** A firing pass's result, and the schedules it could not plan (see `fireSchedules`). */
export interface FirePassResult extends FireResult {
  unplanned: { id: string; error: unknown }[];
}

/**
 * One firing pass: transactions of up to 50 due schedules each (`ScheduleStore.fire`), until none
 * is due. Any number of workers run it at once: each transaction holds its schedules' rows (FOR
 * UPDATE SKIP LOCKED), and a tick's task is unique (its key in task_keys), so each tick makes
 * one task. The tasks are ordinary PENDING rows: the dispatcher hands them out in their tenant's
 * turn, within its limits; `max_queued` is counted as at a submission, and a tick refused by it is
 * recorded as a skipped run (QUEUE_FULL) on its schedule.
 *
 * A schedule this worker cannot plan (a cron or a zone it cannot read: written by a newer version,
 * or a zone its ICU lacks) fires nothing and is tried again in a minute (`unplanned`): it does not
 * fail the transaction, which would stop every schedule due after it, on every pass.
 */
export async function fireSchedules(
  store: ScheduleStore,
  limits: Limits,
  options: FireOptions,
  now: () => Date = () => new Date(),
): Promise<FirePassResult> {
  const total: FirePassResult = { schedules: 0, fired: [], skipped: [], unplanned: [] };
  for (;;) {
    const result = await store.fire(BATCH, async (due) => {
      const at = now();
      const fires = due.map((schedule): PlannedFire => {
        try {
          return planFire(schedule, at, options);
        } catch (error) {
          total.unplanned.push({ id: schedule.id, error });
          const retry = new Date(at.getTime() + UNPLANNABLE_RETRY_MS);
          return { schedule, ticks: [], nextFireAt: retry, maxAttempts: 1, ttlMs: null };
        }
      });
      const [tenants, types] = await Promise.all([
        limits.tenants(due.map((s) => s.tenantId)),
        Promise.all(
          [...new Set(due.map((s) => s.name))].map(async (name) => [name, await limits.type(name)] as const),
        ),
      ]);
      const typeLimits = new Map(types);
      return {
        fires,
        limits: {
          tenant: (id) => tenants.get(id)?.maxQueued ?? limits.tenantDefaults.maxQueued,
          type: (name) => typeLimits.get(name)?.maxQueued ?? null,
        },
      };
    });
    total.schedules += result.schedules;
    total.fired.push(...result.fired);
    total.skipped.push(...result.skipped);
    if (result.schedules < BATCH) return total;
  }
}
