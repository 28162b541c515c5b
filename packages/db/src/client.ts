import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.ts';
import { postgresConnection } from './tls.ts';

export type Database = PostgresJsDatabase<typeof schema>;

export interface DbClient {
  db: Database;
  sql: postgres.Sql;
  /**
   * On PostgreSQL itself, for what needs a session of its own: LISTEN (`direct.listen(...)` opens one
   * connection for its channels). `sql` itself when there is no pooler (see `DbOptions.directUrl`);
   * behind one, a client of the direct URL that opens no connection but its listener's.
   */
  direct: postgres.Sql;
  /** Whether `sql` goes through a connection pooler in transaction mode (`directUrl` given and other than the URL). */
  pooled: boolean;
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
  /**
   * PostgreSQL itself, when the URL is a connection pooler in transaction mode (PgBouncer's
   * `pool_mode = transaction`, DATABASE_DIRECT_URL): each transaction may then run on another of the
   * pooler's server connections, so the pool prepares no statement (a statement prepared on one
   * connection is unknown to the next) and sends no startup parameter but `application_name` (a
   * pooler refuses the others: `unsupported startup parameter: plan_cache_mode`). `direct` connects
   * here. Unset, or the same URL: no pooler.
   */
  directUrl?: string;
}

/** Whether `url` is a pooler in front of `directUrl` (see DbOptions.directUrl). */
export function isPooled(url: string, directUrl: string | undefined): boolean {
  return directUrl !== undefined && directUrl !== url;
}

/** One pooled client per process. */
export function createDb(
  url: string,
  { max = 10, name = 'tasker', durableCommits = true, directUrl }: DbOptions = {},
): DbClient {
  const pooled = isPooled(url, directUrl);
  // Plan each statement for its own parameters. A prepared statement's generic plan is made once
  // per connection, when the tasks table may still be empty: then a claim walks every unfinished
  // (and dead) entry of tasks_unfinished_idx instead of looking ids up by primary key, and every
  // batch gets slower as the table grows (measured: 1,200 → 250 tasks/s). Behind a pooler nothing
  // is prepared: each statement is PostgreSQL's unnamed one, parsed again at every run, and
  // PostgreSQL plans it with the values bound (a custom plan: it counts the custom plans of a
  // statement before it tries a generic one, and an unnamed statement's count starts again at
  // every Parse; checked with auto_explain), so the setting is not needed there.
  const settings = {
    plan_cache_mode: 'force_custom_plan',
    // Behind a pooler the worker's commits are durable: a pooler passes on no such parameter, and a
    // `set local` in every transaction would cost a statement each (docs/architecture.md, "Behind a
    // connection pooler").
    ...(durableCommits ? {} : { synchronous_commit: 'off' }),
  };
  const open = (target: string, { poolSize, viaPooler }: { poolSize: number; viaPooler: boolean }) => {
    const { url: bare, ssl } = postgresConnection(target);
    return postgres(bare, {
      ssl,
      max: poolSize,
      idle_timeout: 30,
      connect_timeout: 5,
      // Wait before reconnecting after a failed connection: 50 ms, doubling, at most 500 ms. The
      // driver's default (3^n / 100 s, up to 20 s, counted across the pool) holds every query of an
      // outage for that long, so requests hang instead of answering their 503.
      backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
      onnotice: () => {},
      prepare: !viaPooler,
      // Behind a pooler, one query at a time per connection. postgres.js sends a query with
      // parameters and no prepared statement in two steps (Parse/Describe/Flush, then
      // Bind/Execute/Sync), and pipelines queries behind a busy one: PgBouncer 1.18 gives the
      // server connection back to its pool at the first query's ReadyForQuery, and the answer to
      // the pipelined Parse arrives nowhere ("got packet '1' from server when not linked"): that
      // connection then waits forever, seen as a worker that stops. (max_pipeline 0 needs the
      // patch of postgres.js that still lets sql.begin reserve its connection: patches/.)
      ...(viaPooler ? { max_pipeline: 0 } : {}),
      connection: { application_name: name, ...(viaPooler ? {} : settings) },
    });
  };
  const sql = open(url, { poolSize: max, viaPooler: pooled });
  const direct = pooled && directUrl ? open(directUrl, { poolSize: 1, viaPooler: false }) : sql;
  const db = drizzle(sql, { schema });
  return {
    db,
    sql,
    direct,
    pooled,
    close: async () => {
      await Promise.all([sql.end({ timeout: 5 }), direct === sql ? undefined : direct.end({ timeout: 5 })]);
    },
  };
}
