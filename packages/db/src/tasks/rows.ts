import { getTableColumns } from 'drizzle-orm';
import { type TaskRow, tasks } from '../schema.ts';

const columns = getTableColumns(tasks);

/**
 * A PostgreSQL array literal of texts ('{"a","b",NULL}'), cast in SQL to the element type wanted.
 * Written out here because postgres.js serialises array parameters only once it has fetched the
 * server's array types, which the first query on a new connection may not wait for.
 */
export function pgArray(values: readonly (string | null | undefined)[]): string {
  const items = values.map((v) =>
    v == null ? 'NULL' : `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  return `{${items.join(',')}}`;
}

/** One array column of a batch: each item's value as text (null stays NULL). */
export function column<T>(items: readonly T[], value: (item: T) => unknown): string {
  return pgArray(
    items.map((item) => {
      const v = value(item);
      return v == null ? null : String(v);
    }),
  );
}

/** A row as postgres.js returns it from raw SQL (snake_case, driver values) → the drizzle row type. */
export function fromDriver(raw: Record<string, unknown>): TaskRow {
  const row: Record<string, unknown> = {};
  for (const [key, col] of Object.entries(columns)) {
    const value = raw[col.name];
    row[key] = value === null || value === undefined ? null : col.mapFromDriverValue(value);
  }
  return row as TaskRow;
}

/** Raw rows by id. */
export const byId = (rows: readonly Record<string, unknown>[]): Map<string, TaskRow> =>
  new Map(rows.map((raw) => [raw.id as string, fromDriver(raw)]));
