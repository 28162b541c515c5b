import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import * as schema from './schema.ts';

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
}

/** One pooled client per process. */
export function createDb(url: string, { max = 10, name = 'tasker' }: DbOptions = {}): DbClient {
  const sql = postgres(url, {
    max,
    idle_timeout: 30,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: name },
  });
  const db = drizzle(sql, { schema });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}
