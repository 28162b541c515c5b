import { gte, lt, type SQL } from 'drizzle-orm';
import { tasks } from '../schema.ts';

/*
 * Walks of a tenant's tasks newest first, read in steps of time (docs/partitioning.md, step 3): the
 * same query bounded by created_at over windows that widen back from the walk's top (its cursor, or
 * now): a day, a week, a month, then the rest, until the page is full. The bounds are constants of
 * each statement, so that a table partitioned by created_at plans and reads only the partitions of
 * the window: a busy tenant's page is one query over one or two partitions, a sparse tenant's (or a
 * rare search's) up to four, the last over every older one. On today's unpartitioned table a window
 * is a range of the listing indexes (owner_id, ..., created_at DESC, id DESC): the rows, and their
 * order, are those of one unbounded query.
 */

const DAY_MS = 86_400_000;

/**
 * The earliest time PostgreSQL holds (the year 1, UTC; the API refuses bounds before it): a window
 * edge earlier than that would be a statement PostgreSQL refuses, so the window below is open.
 */
const EARLIEST_MS = Date.parse('0001-01-01T00:00:00Z');

/** The widths of a walk's windows, newest first, from its top; then one more window, the rest. */
export const STEP_WIDTHS_MS = [DAY_MS, 7 * DAY_MS, 31 * DAY_MS] as const;

/** A window of a walk: `from <= created_at < before`, either side open when undefined. */
export interface TimeWindow {
  from?: Date;
  before?: Date;
}

/**
 * The windows of a walk, newest first. `top`: the walk's exclusive upper bound (a cursor's time + 1
 * ms, a `createdBefore`), undefined for none: then the first window is open above (a new task's
 * created_at is its id's time, which may be ahead of this process's clock) and the widths count back
 * from `now`. `bottom`: its inclusive lower bound (a `createdAfter`), where the walk stops.
 */
export function timeWindows(top: Date | undefined, bottom: Date | undefined, now = Date.now()): TimeWindow[] {
  const anchor = top?.getTime() ?? now;
  const windows: TimeWindow[] = [];
  let before = top;
  for (const width of [...STEP_WIDTHS_MS, Number.POSITIVE_INFINITY]) {
    const edge = anchor - width >= EARLIEST_MS ? anchor - width : Number.NEGATIVE_INFINITY;
    if (bottom && before && before.getTime() <= bottom.getTime()) break;
    if (bottom && !(edge > bottom.getTime())) {
      windows.push({ from: bottom, before });
      break;
    }
    if (!Number.isFinite(edge)) {
      windows.push({ before });
      break;
    }
    const from = new Date(edge);
    windows.push({ from, before });
    before = from;
  }
  return windows;
}

/** The earlier of two upper bounds (undefined: none). */
export function earlier(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (!a) return b;
  if (!b) return a;
  return a.getTime() <= b.getTime() ? a : b;
}

/** The created_at conditions of a window (to be joined with AND). */
export function windowConditions(window: TimeWindow): SQL[] {
  return [
    ...(window.from ? [gte(tasks.createdAt, window.from)] : []),
    ...(window.before ? [lt(tasks.createdAt, window.before)] : []),
  ];
}

/**
 * At most `limit` rows of a walk newest first: `read` (one window's rows, newest first, at most the
 * limit it is given) over the windows in turn, until `limit` rows are read or the windows end.
 */
export async function readStepped<T>(
  windows: readonly TimeWindow[],
  limit: number,
  read: (window: TimeWindow, limit: number) => Promise<T[]>,
): Promise<T[]> {
  const rows: T[] = [];
  for (const window of windows) {
    if (rows.length >= limit) break;
    rows.push(...(await read(window, limit - rows.length)));
  }
  return rows;
}

/** A cursor's time as a walk's exclusive top: its own millisecond included (the cursor condition cuts it exactly). */
export const afterCursor = (cursor: { createdAt: Date } | undefined): Date | undefined =>
  cursor ? new Date(cursor.createdAt.getTime() + 1) : undefined;
