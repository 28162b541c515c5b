import type { TRPCClient } from '@trpc/client';
import type { AppRouter, TaskInput, TaskName, WireOutputs } from './types.ts';
import {
  scheduleChangeToWire,
  scheduleListOptionsToWire,
  schedulePageFromWire,
  scheduleToWire,
  type WireFields,
} from './wire.ts';

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
/** `list()`'s options: `limit` 1 to 200 (default 50), `cursor` the previous page's `nextCursor`. */
export interface ScheduleListOptions {
  limit?: number;
  cursor?: string;
}

export interface SchedulePage {
  schedules: Schedule[];
  nextCursor: string | null;
}

export interface SchedulesApi {
  /** Creates a schedule; with a `key` the tenant already uses, updates that one instead. */
  create<N extends TaskName>(schedule: NewSchedule<N>): Promise<Schedule>;
  /** The tenant's schedules, oldest first: `limit` 1 to 200 (default 50), `cursor` the previous page's `nextCursor`. */
  list(options?: ScheduleListOptions): Promise<SchedulePage>;
  get(id: string): Promise<ScheduleDetail>;
  update<N extends TaskName = TaskName>(id: string, change: ScheduleChange<N>): Promise<Schedule>;
  /** It fires nothing until resumed. */
  pause(id: string): Promise<Schedule>;
  /** It fires again from the next tick after now (the ticks of the pause are not caught up). */
  resume(id: string): Promise<Schedule>;
  /** It fires no more; its tasks stay. */
  delete(id: string): Promise<Schedule>;
}

/** `tasker.schedules`, over the router's schedule procedures (the fields mapped in wire.ts). */
export function createSchedulesApi(
  trpc: TRPCClient<AppRouter>,
  call: <T>(promise: Promise<T>, fields?: WireFields) => Promise<T>,
): SchedulesApi {
  // Async: an option refused while building the wire input rejects, as a refusal of the server does.
  const update = async (id: string, change: ScheduleChange) =>
    call(trpc.updateSchedule.mutate({ id, ...scheduleChangeToWire(change) }), 'schedule');
  return {
    create: async (schedule) => call(trpc.createSchedule.mutate(scheduleToWire(schedule)), 'schedule'),
    list: async (options = {}) =>
      schedulePageFromWire(await call(trpc.listSchedules.query(scheduleListOptionsToWire(options)))),
    get: (id) => call(trpc.getSchedule.query({ id })),
    update,
    pause: (id) => update(id, { paused: true }),
    resume: (id) => update(id, { paused: false }),
    delete: (id) => call(trpc.deleteSchedule.mutate({ id })),
  };
}
