import { type SQL, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { tasks } from '../schema.ts';
import { uuidv7Ms } from '../uuidv7.ts';

/*
 * A task's id and its created_at, tied (docs/partitioning.md, steps 1 and 2): a new task's row gets
 * its UUIDv7 id's time as created_at (CREATED_AT), so that a statement by id can bound created_at
 * with constants (createdAtWindow), which is what lets a table partitioned by created_at read only
 * the partition of the ids it names. Ids that are no UUIDv7 (tests', tasks of old) get no bound.
 */
/**
 * The slack either side of an id's time in which its row's created_at lies (createdAtWindow): the
 * rows of the first UUIDv7 hours got now(), a few milliseconds after their id's time.
 */
const WINDOW_MS = 60_000;
/** Furthest a new task's id may be ahead of PostgreSQL's clock (CREATED_AT): a clock set wrong. */
const AHEAD_MS = 60_000;
/**
 * Furthest it may be behind: an hour. An id is made before its statement runs, and may wait for a
 * connection, a lock or a batch on an overloaded machine; that is no wrong clock, and its row keeps
 * its id's time. An hour is past any such wait, and short of an ill-set clock's days.
 */
const BEHIND_MS = 3_600_000;

/**
 * A new task's created_at, in SQL, from `v.created_ms` (`createdMs`: the time of its UUIDv7 id): a
 * task's id names its creation time, so that a table partitioned by created_at finds an id's
 * partition from the id alone (docs/partitioning.md). An id made by a process whose clock is over a
 * minute ahead of PostgreSQL's, or an hour behind, gives null, a not-null violation that refuses the
 * statement (`refuseClockSkew`); an id that is no UUIDv7 (made elsewhere: tests, tasks of old) gets
 * now().
 */
export const CREATED_AT = `case when v.created_ms is null then now()
  when v.created_ms - (select (extract(epoch from now()) * 1000)::bigint) between ${-BEHIND_MS} and ${AHEAD_MS}
  then timestamptz 'epoch' + v.created_ms * interval '1 millisecond' end`;

/** The `created_ms` column of `CREATED_AT`: the id's time, null for an id that is no UUIDv7. */
export const createdMs = (row: { id: string }): number | null => uuidv7Ms(row.id) ?? null;

/**
 * Rethrows `CREATED_AT`'s refusal as what it is; any other error as it is. Its null created_at is
 * found by the partition routing first (no partition holds a null key), a not-null violation on a
 * table that is not partitioned.
 */
export function refuseClockSkew(error: unknown): never {
  const {
    code,
    column_name: columnName,
    detail,
  } = (error ?? {}) as { code?: unknown; column_name?: unknown; detail?: unknown };
  const nullKey = code === '23514' && typeof detail === 'string' && detail.includes('(created_at) = (null)');
  if ((code === '23502' && columnName === 'created_at') || nullKey)
    throw new Error(
      `a task id's time (UUIDv7, made by this process) is over ${AHEAD_MS / 1000} s ahead of PostgreSQL's clock or over ${BEHIND_MS / 60_000} min behind it: set both clocks right (NTP)`,
      { cause: error },
    );
  throw error;
}

/** 9999-12-31T23:59:59.999Z, less the window: the last time `toISOString` writes with four digits. */
const LAST_ISO_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999) - WINDOW_MS;

/**
 * The created_at bounds of the rows with these ids, as text for `::timestamptz`: a minute either
 * side of the earliest and the latest id's time. Undefined when any id is no UUIDv7 (its row may
 * have any created_at) or none is given.
 */
export function createdAtWindow(ids: Iterable<string>): { from: string; to: string } | undefined {
  let low = Number.POSITIVE_INFINITY;
  let high = Number.NEGATIVE_INFINITY;
  for (const id of ids) {
    const ms = uuidv7Ms(id);
    // An id whose time is past year 9999 (a client's made-up id: no task of ours) gets no bound:
    // its time has no ISO text PostgreSQL reads.
    if (ms === undefined || ms > LAST_ISO_MS) return undefined;
    if (ms < low) low = ms;
    if (ms > high) high = ms;
  }
  if (low > high) return undefined;
  return {
    from: new Date(low - WINDOW_MS).toISOString(),
    to: new Date(high + WINDOW_MS).toISOString(),
  };
}

/** `createdAtWindow` as a condition on `tasks` (drizzle); undefined when there is none. */
export function createdAtOf(ids: Iterable<string>): SQL | undefined {
  const window = createdAtWindow(ids);
  return window && sql`${tasks.createdAt} between ${window.from}::timestamptz and ${window.to}::timestamptz`;
}

/** `createdAtWindow` as `and <alias>.created_at between …` for raw SQL (postgres.js); empty when none. */
export function andCreatedAt(
  pg: postgres.Sql,
  alias: string,
  ids: Iterable<string>,
): postgres.PendingQuery<postgres.Row[]> {
  const window = createdAtWindow(ids);
  return window
    ? pg`and ${pg(alias)}.created_at between ${window.from}::timestamptz and ${window.to}::timestamptz`
    : pg``;
}

/**
 * How far before its parent's id time a child's created_at may lie: a child is inserted after its
 * parent, its id as much as BEHIND_MS behind the database's clock, the parent's up to the window
 * after its id's time (tasker_task_finished's `interval '61 minutes'` in SQL).
 */
const CHILD_BEFORE_PARENT_MS = BEHIND_MS + WINDOW_MS;

/**
 * `<child>.created_at >= <parent>.created_at - …` in SQL, for a parent known by its row (a join, a
 * correlated subquery): the partitions older than the parent are not read. `andChildrenOf` is the
 * same bound for parents known by their ids.
 */
export const childAfterParent = (child: string, parent: string): string =>
  `${child}.created_at >= ${parent}.created_at - interval '${CHILD_BEFORE_PARENT_MS} milliseconds'`;

/**
 * `and <alias>.created_at >= …` for the children of these parents: the partitions older than the
 * earliest parent are not read. Empty when a parent's id has no time (a legacy id).
 */
export function andChildrenOf(
  pg: postgres.Sql,
  alias: string,
  parentIds: Iterable<string>,
): postgres.PendingQuery<postgres.Row[]> {
  const window = createdAtWindow(parentIds);
  if (!window) return pg``;
  const from = new Date(new Date(window.from).getTime() + WINDOW_MS - CHILD_BEFORE_PARENT_MS).toISOString();
  return pg`and ${pg(alias)}.created_at >= ${from}::timestamptz`;
}
