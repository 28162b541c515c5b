import { getTableColumns } from 'drizzle-orm';
import { type TaskRow, tasks } from '../schema.ts';

const columns = getTableColumns(tasks);
/** A row's field and column, by the column's name (as raw SQL returns it). */
const byColumnName = new Map(Object.entries(columns).map(([key, col]) => [col.name, { key, col }]));
/** Every field null: `fromDriver` copies it (one shape for every row) and fills what it reads. */
const NULL_ROW: Readonly<Record<string, unknown>> = Object.fromEntries(
  Object.keys(columns).map((key) => [key, null]),
);

/**
 * A PostgreSQL array literal of texts ('{"a","b",NULL}'), cast in SQL to the element type wanted.
 * Written out here because postgres.js serialises array parameters only once it has fetched the
 * server's array types, which the first query on a new connection may not wait for.
 */
export function pgArray(values: readonly (string | null | undefined)[]): string {
  let text = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) text += ',';
    text += element(values[i]);
  }
  return `${text}}`;
}

/** One array column of a batch: each item's value as text (null stays NULL). */
export function column<T>(items: readonly T[], value: (item: T, index: number) => unknown): string {
  let text = '{';
  for (let i = 0; i < items.length; i++) {
    if (i > 0) text += ',';
    const v = value(items[i] as T, i);
    text += element(v == null ? null : String(v));
  }
  return `${text}}`;
}

/** Characters that an array element must escape. */
const ESCAPED = /["\\]/;

/** One element of an array literal, quoted (escaped only when it holds a quote or a backslash). */
function element(v: string | null | undefined): string {
  if (v == null) return 'NULL';
  return ESCAPED.test(v) ? `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"` : `"${v}"`;
}

/** A row as postgres.js returns it from raw SQL (snake_case, driver values) → the drizzle row type. */
export function fromDriver(raw: Record<string, unknown>): TaskRow {
  // Runs for every row read raw (a batch's 1,000 at once): a copy of one shape, filled from the
  // columns the row has (a batch reads five), costs a fraction of adding the 37 fields one by one.
  const row: Record<string, unknown> = { ...NULL_ROW };
  for (const name in raw) {
    const value = raw[name];
    const field = byColumnName.get(name);
    if (field && value !== null && value !== undefined) row[field.key] = field.col.mapFromDriverValue(value);
  }
  return row as TaskRow;
}

/** Raw rows by id. */
export const byId = (rows: readonly Record<string, unknown>[]): Map<string, TaskRow> =>
  new Map(rows.map((raw) => [raw.id as string, fromDriver(raw)]));
