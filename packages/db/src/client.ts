import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.ts';
import { postgresConnection } from './tls.ts';

export type Database = PostgresJsDatabase<typeof schema>;

export interface DbClient {
  db: Database;
  sql: postgres.Sql;
  close(): Promise<void>;
}

export interface DbOptions {
  /** Pool size. PostgreSQL allows 100 connections for every process together. */
  max?: number;
  /** Application name shown in pg_stat_activity. */
  name?: string;
  /**
   * false: commits return before their WAL reaches disk (PostgreSQL's `synchronous_commit = off`).
   * A crash of PostgreSQL may then forget the last fraction of a second of commits, never corrupt
   * anything. For the worker that is safe: a forgotten RUNNING/COMPLETED leaves the row unfinished
   * with its job gone, and the sweeper runs the task again. Submissions stay durable (the server
   * answers 200 only for a row that is on disk).
   */
  durableCommits?: boolean;
}

/** One pooled client per process. */
export function createDb(
  url: string,
  { max = 10, name = 'tasker', durableCommits = true }: DbOptions = {},
): DbClient {
  const { url: bare, ssl } = postgresConnection(url);
  const sql = postgres(bare, {
    ssl,
    max,
    idle_timeout: 30,
    connect_timeout: 5,
    // Wait before reconnecting after a failed connection: 50 ms, doubling, at most 500 ms. The
    // driver's default (3^n / 100 s, up to 20 s, counted across the pool) holds every query of an
    // outage for that long, so requests hang instead of answering their 503.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    onnotice: () => {},
    connection: {
      application_name: name,
      // Plan each statement for its own parameters. A prepared statement's generic plan is made
      // once per connection, when the tasks table may still be empty: then a claim walks every
      // unfinished (and dead) entry of tasks_unfinished_idx instead of looking ids up by primary
      // key, and every batch gets slower as the table grows (measured: 1,200 → 250 tasks/s).
      plan_cache_mode: 'force_custom_plan',
      ...(durableCommits ? {} : { synchronous_commit: 'off' }),
    },
  });
  const db = drizzle(sql, { schema });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}
