import type { CatchUpPolicy, ScheduleRow, ScheduleRun, ScheduleStore, TaskStatus } from '@tasker/db';
import { getTaskDefinition } from '@tasker/tasks';
import { InvalidArgumentError } from '../errors/invalid-argument.ts';
import { InvalidTaskInputError } from '../errors/invalid-task-input.ts';
import { NotFoundError } from '../errors/not-found.ts';
import { CronError, checkTimeZone, nextFire, nextFires, parseCron, shortestGap } from './cron.ts';

/** A schedule as the API shows it (camelCase, times in ISO 8601). */
export interface ScheduleView {
  id: string;
  key: string | null;
  name: string;
  input: unknown;
  cron: string;
  timezone: string;
  catchUp: CatchUpPolicy;
  paused: boolean;
  priority: number;
  maxAttempts: number | null;
  timeoutMs: number | null;
  ttlMs: number | null;
  concurrencyKey: string | null;
  nextFireAt: string | null;
  lastFireAt: string | null;
  skippedRuns: number;
  lastSkippedFor: string | null;
  lastSkipReason: string | null;
  createdAt: string;
  updatedAt: string;
}

/** GET /schedules/{id}: the schedule, its next fires and its latest runs. */
export interface ScheduleDetail extends ScheduleView {
  nextFires: string[];
  runs: { id: string; scheduledFor: string; status: TaskStatus }[];
}

/** A create (or an upsert by key). */
export interface ScheduleInput {
  tenantId: string;
  name: string;
  input: unknown;
  cron: string;
  timezone?: string;
  key?: string;
  catchUp?: CatchUpPolicy;
  paused?: boolean;
  priority?: number;
  maxAttempts?: number;
  timeoutMs?: number;
  ttlMs?: number;
  concurrencyKey?: string;
}

/** A PATCH: what is given changes. */
export interface SchedulePatch {
  cron?: string;
  timezone?: string;
  input?: unknown;
  paused?: boolean;
  catchUp?: CatchUpPolicy;
}

export interface ScheduleApi {
  create(input: ScheduleInput): Promise<{ schedule: ScheduleView; created: boolean }>;
  list(
    tenantId: string,
    page: { limit: number; cursor?: string },
  ): Promise<{ schedules: ScheduleView[]; nextCursor: string | null }>;
  get(tenantId: string, id: string): Promise<ScheduleDetail>;
  update(tenantId: string, id: string, patch: SchedulePatch): Promise<ScheduleView>;
  delete(tenantId: string, id: string): Promise<ScheduleView>;
}

/** How many runs GET /schedules/{id} shows, and how many next fires. */
export const SCHEDULE_RUNS_SHOWN = 10;
export const SCHEDULE_NEXT_FIRES = 5;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function scheduleView(row: ScheduleRow): ScheduleView {
  return {
    id: row.id,
    key: row.key,
    name: row.name,
    input: row.input,
    cron: row.cron,
    timezone: row.timezone,
    catchUp: row.catchUp,
    paused: row.paused,
    priority: row.priority,
    maxAttempts: row.maxAttempts,
    timeoutMs: row.timeoutMs,
    ttlMs: row.ttlMs,
    concurrencyKey: row.concurrencyKey,
    nextFireAt: iso(row.nextFireAt),
    lastFireAt: iso(row.lastFireAt),
    skippedRuns: row.skippedRuns,
    lastSkippedFor: iso(row.lastSkippedFor),
    lastSkipReason: row.lastSkipReason,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/**
 * The cron and zone checked together: 400 naming `timezone` for a zone that is not an IANA name,
 * `cron` for a malformed cron, one that never fires, or one firing more often than
 * `minIntervalMs` (the shortest gap between consecutive fires among the next 1,000; none is under
 * 1 s, the default). Returns the normalised cron, the canonical zone and the first fire after `now`.
 */
export function checkCron(
  cron: string,
  timezone: string,
  minIntervalMs: number,
  now = new Date(),
): { cron: string; timezone: string; nextFireAt: Date } {
  let zone: string;
  try {
    zone = checkTimeZone(timezone);
  } catch (error) {
    if (error instanceof CronError) throw new InvalidArgumentError('timezone', error.message);
    throw error;
  }
  try {
    const parsed = parseCron(cron);
    const first = nextFire(parsed, zone, now);
    if (!first) throw new CronError('never fires (no date matches it)');
    // Fires are distinct whole seconds: no two are closer than 1 s, so the scan of the next 1,000
    // (a few hundred ms of Intl calls, on the request's thread) is only needed above that.
    const gap = minIntervalMs > 1000 ? shortestGap(parsed, zone, now) : undefined;
    if (gap !== undefined && gap < minIntervalMs)
      throw new CronError(
        `fires every ${gap / 1000} s at times, more often than SCHEDULE_MIN_INTERVAL_MS (${minIntervalMs} ms)`,
      );
    return { cron: parsed.source, timezone: zone, nextFireAt: first };
  } catch (error) {
    if (error instanceof CronError) throw new InvalidArgumentError('cron', error.message);
    throw error;
  }
}

/** A task type's input, parsed by its schema: 400 with the issues under `input`; an unknown type names `name`. */
function parseInput(name: string, input: unknown): unknown {
  const definition = getTaskDefinition(name);
  if (!definition) throw new InvalidArgumentError('name', `"${name}" is not a task type (GET /task-types)`);
  const parsed = definition.input.safeParse(input);
  if (!parsed.success) throw new InvalidTaskInputError('Invalid task parameters', parsed.error.issues);
  return parsed.data;
}

const NOT_FOUND = 'Schedule not found';

/**
 * A schedule's next fires; none when this process cannot read its cron or zone (written by a newer
 * version, or a zone its ICU lacks: the firing pass skips it too), rather than a 500 for the page.
 */
function upcoming(row: ScheduleRow): Date[] {
  try {
    return nextFires(parseCron(row.cron), row.timezone, new Date(), SCHEDULE_NEXT_FIRES);
  } catch {
    return [];
  }
}

/**
 * Schedules, per tenant: every call names the caller's tenant, and another tenant's schedule
 * answers as an unknown one (404). Checks everything before writing anything.
 */
export function createScheduleApi(store: ScheduleStore, options: { minIntervalMs: number }): ScheduleApi {
  const found = async (tenantId: string, id: string) => {
    const row = await store.get(id, tenantId);
    if (!row) throw new NotFoundError(NOT_FOUND);
    return row;
  };
  return {
    async create(input) {
      const checked = checkCron(input.cron, input.timezone ?? 'UTC', options.minIntervalMs);
      const parsedInput = parseInput(input.name, input.input);
      const { row, created } = await store.upsert({
        tenantId: input.tenantId,
        key: input.key ?? null,
        name: input.name,
        input: parsedInput,
        cron: checked.cron,
        timezone: checked.timezone,
        catchUp: input.catchUp ?? 'latest',
        paused: input.paused ?? false,
        priority: input.priority ?? 0,
        maxAttempts: input.maxAttempts ?? null,
        timeoutMs: input.timeoutMs ?? null,
        ttlMs: input.ttlMs ?? null,
        concurrencyKey: input.concurrencyKey ?? null,
        nextFireAt: checked.nextFireAt,
      });
      return { schedule: scheduleView(row), created };
    },

    async list(tenantId, page) {
      const { schedules, nextCursor } = await store.list(tenantId, page);
      // A cursor that is none of the tenant's schedules finds nothing after it: asked only then.
      if (page.cursor !== undefined && schedules.length === 0 && !(await store.exists(page.cursor, tenantId)))
        throw new InvalidArgumentError('cursor', 'is not a next_cursor this API gave');
      return { schedules: schedules.map(scheduleView), nextCursor };
    },

    async get(tenantId, id) {
      const row = await found(tenantId, id);
      const runs: ScheduleRun[] = await store.runs(id, tenantId, SCHEDULE_RUNS_SHOWN);
      const fires = upcoming(row);
      return {
        ...scheduleView(row),
        nextFires: fires.map((d) => d.toISOString()),
        runs: runs.map((r) => ({ id: r.id, scheduledFor: r.scheduledFor.toISOString(), status: r.status })),
      };
    },

    async update(tenantId, id, patch) {
      const row = await found(tenantId, id);
      const cron = patch.cron ?? row.cron;
      const timezone = patch.timezone ?? row.timezone;
      const checked = checkCron(cron, timezone, options.minIntervalMs);
      const input = patch.input === undefined ? undefined : parseInput(row.name, patch.input);
      // A new cron or zone, or a resume, starts from now: the ticks of a pause are not caught up.
      const restart =
        patch.cron !== undefined || patch.timezone !== undefined || (patch.paused === false && row.paused);
      const updated = await store.update(id, tenantId, {
        ...(patch.cron !== undefined ? { cron: checked.cron } : {}),
        ...(patch.timezone !== undefined ? { timezone: checked.timezone } : {}),
        ...(input !== undefined ? { input } : {}),
        ...(patch.paused !== undefined ? { paused: patch.paused } : {}),
        ...(patch.catchUp !== undefined ? { catchUp: patch.catchUp } : {}),
        ...(restart ? { nextFireAt: checked.nextFireAt } : {}),
      });
      if (!updated) throw new NotFoundError(NOT_FOUND);
      return scheduleView(updated);
    },

    async delete(tenantId, id) {
      const row = await store.delete(id, tenantId);
      if (!row) throw new NotFoundError(NOT_FOUND);
      return scheduleView(row);
    },
  };
}
