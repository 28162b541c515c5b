import type { TRPCClient } from '@trpc/client';
import { TaskerValidationError } from './errors.ts';
import type { AppRouter, TaskInput, TaskName, WireInputs, WireOutputs } from './types.ts';

/** What a schedule does with the ticks missed while nothing fired it (every worker down). */
export type CatchUp = 'none' | 'latest' | 'all';

/** How a schedule runs, beside its task type, input and cron. Every field is optional. */
export interface ScheduleOptions {
  /** An IANA time zone (default `UTC`): the cron reads its wall clock. */
  timezone?: string;
  /** Unique per tenant: creating with a key already used updates that schedule (an upsert). */
  key?: string;
  /** Missed ticks: `none` dropped, `latest` (default) the latest fires, `all` they all fire (bounded). */
  catchUp?: CatchUp;
  /** Created paused: it fires nothing until resumed. */
  paused?: boolean;
  /** Its tasks' priority, 0 (default) to 100. */
  priority?: number;
  /** Its tasks' attempts in all (default: the task type's). */
  maxAttempts?: number;
  /** An attempt running longer is aborted (default: the task type's). */
  timeoutMs?: number;
  /** A task not started within this many ms of its tick ends EXPIRED. */
  ttlMs?: number;
  /** Its tasks share this key's concurrency limits (default: the tenant). */
  concurrencyKey?: string;
}

/**
 * A schedule to create: the task type (`name`), its parameters (`input`, typed by the name), a cron
 * of 5 fields, or 6 with seconds first, and options.
 */
export type NewSchedule<N extends TaskName = TaskName> = {
  name: N;
  input: TaskInput<N>;
  cron: string;
} & ScheduleOptions;

/** What `update()` changes: a field left out stays. A new cron or zone, or a resume, starts from now. */
export interface ScheduleChange<N extends TaskName = TaskName> {
  cron?: string;
  timezone?: string;
  input?: TaskInput<N>;
  paused?: boolean;
  catchUp?: CatchUp;
}

/** A schedule as the server has it (`nextFireAt`, `lastFireAt`, `skippedRuns`, ...). */
export type Schedule = WireOutputs['getSchedule'] extends infer D ? Omit<D, 'nextFires' | 'runs'> : never;
/** `get(id)`: the schedule, its next 5 fire times (`nextFires`) and its latest `runs` (id, scheduledFor, status). */
export type ScheduleDetail = WireOutputs['getSchedule'];
/** A page of `list()`: pass `nextCursor` back as `cursor`; `null` on the last page. */
export interface SchedulePage {
  schedules: Schedule[];
  nextCursor: string | null;
}

export interface SchedulesApi {
  /** Creates a schedule; with a `key` the tenant already uses, updates that one instead. */
  create<N extends TaskName>(schedule: NewSchedule<N>): Promise<Schedule>;
  /** The tenant's schedules, oldest first: `limit` 1 to 200 (default 50), `cursor` the previous page's `nextCursor`. */
  list(options?: { limit?: number; cursor?: string }): Promise<SchedulePage>;
  get(id: string): Promise<ScheduleDetail>;
  update<N extends TaskName = TaskName>(id: string, change: ScheduleChange<N>): Promise<Schedule>;
  /** It fires nothing until resumed. */
  pause(id: string): Promise<Schedule>;
  /** It fires again from the next tick after now (the ticks of the pause are not caught up). */
  resume(id: string): Promise<Schedule>;
  /** It fires no more; its tasks stay. */
  delete(id: string): Promise<Schedule>;
}

type CreateWire = WireInputs['createSchedule'];
type UpdateWire = WireInputs['updateSchedule'];

/** Each option and the router's name for it (checked against both sides). */
const CREATE_FIELDS = {
  name: 'name',
  input: 'input',
  cron: 'cron',
  timezone: 'timezone',
  key: 'key',
  catchUp: 'catch_up',
  paused: 'paused',
  priority: 'priority',
  maxAttempts: 'max_attempts',
  timeoutMs: 'timeout_ms',
  ttlMs: 'ttl_ms',
  concurrencyKey: 'concurrency_key',
} as const satisfies { [K in keyof Required<NewSchedule>]: keyof CreateWire };
const CHANGE_FIELDS = {
  cron: 'cron',
  timezone: 'timezone',
  input: 'input',
  paused: 'paused',
  catchUp: 'catch_up',
} as const satisfies { [K in keyof Required<ScheduleChange>]: keyof UpdateWire };

const CAMEL = new Map<string, string>(Object.entries(CREATE_FIELDS).map(([camel, wire]) => [wire, camel]));

/** Refuses a field the API does not take, naming it (a typo would otherwise be dropped silently). */
function check(value: object, fields: object, what: string): void {
  const unknown = Object.keys(value).filter((k) => !(k in fields));
  if (unknown.length > 0)
    throw new TaskerValidationError(
      `unknown ${what} option(s): ${unknown.join(', ')}`,
      unknown.map((path) => ({ path, message: `not a ${what} option` })),
    );
}

/** A router's validation error names its fields in snake_case: name them as the caller wrote them. */
function renamed(error: unknown): unknown {
  if (error instanceof TaskerValidationError)
    for (const issue of error.issues) {
      const [head = '', ...rest] = issue.path.split('.');
      issue.path = [CAMEL.get(head) ?? head, ...rest].join('.');
    }
  return error;
}

/** `tasker.schedules`, over the router's schedule procedures. */
export function createSchedulesApi(
  trpc: TRPCClient<AppRouter>,
  call: <T>(promise: Promise<T>) => Promise<T>,
): SchedulesApi {
  const named = async <T>(promise: () => Promise<T>): Promise<T> => {
    try {
      return await call(promise());
    } catch (error) {
      throw renamed(error);
    }
  };
  const update = async (id: string, change: ScheduleChange) => {
    check(change, CHANGE_FIELDS, 'schedule change');
    return named(() =>
      trpc.updateSchedule.mutate({
        id,
        cron: change.cron,
        timezone: change.timezone,
        input: change.input as UpdateWire['input'],
        paused: change.paused,
        catch_up: change.catchUp,
      }),
    );
  };
  return {
    create: async (schedule) => {
      check(schedule, CREATE_FIELDS, 'schedule');
      return named(() =>
        trpc.createSchedule.mutate({
          name: schedule.name,
          input: schedule.input as CreateWire['input'],
          cron: schedule.cron,
          timezone: schedule.timezone,
          key: schedule.key,
          catch_up: schedule.catchUp,
          paused: schedule.paused,
          priority: schedule.priority,
          max_attempts: schedule.maxAttempts,
          timeout_ms: schedule.timeoutMs,
          ttl_ms: schedule.ttlMs,
          concurrency_key: schedule.concurrencyKey,
        }),
      );
    },
    list: async (options = {}) => {
      check(options, { limit: 1, cursor: 1 }, 'schedules list');
      const page = await named(() =>
        trpc.listSchedules.query({ limit: options.limit, cursor: options.cursor }),
      );
      return { schedules: page.schedules, nextCursor: page.next_cursor };
    },
    get: (id) => named(() => trpc.getSchedule.query({ id })),
    update,
    pause: (id) => update(id, { paused: true }),
    resume: (id) => update(id, { paused: false }),
    delete: (id) => named(() => trpc.deleteSchedule.mutate({ id })),
  };
}
