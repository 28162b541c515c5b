import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type MigrationMeta, readMigrationFiles } from 'drizzle-orm/migrator';
import postgres from 'postgres';
import { TaskPartitions, WEEKS_AHEAD } from './tasks/partitions.ts';
import { postgresConnection } from './tls.ts';

/** Arbitrary constant: the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 7_428_113_051;

/** How often a process that waits for another's migration tries the lock again (see acquireLock). */
const LOCK_POLL_MS = 100;

/**
 * The first line of a migration that runs outside a transaction, statement by statement (its
 * `--> statement-breakpoint`s): for `CREATE INDEX CONCURRENTLY`, which PostgreSQL refuses in a
 * transaction block. Every statement of such a migration must be safe to run again (`IF NOT EXISTS`,
 * `IF EXISTS`): a run that stops half-way records nothing, and the next one starts it over.
 */
export const NO_TRANSACTION_MARKER = '-- tasker:no-transaction';

/** The committed SQL migrations, wherever this package is installed (also from a bundled app). */
export const migrationsFolder = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@tasker/db/package.json')),
  'drizzle',
);

/** Creates the database named in `url` when it does not exist (safe when several processes race). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const { url: adminUrl, ssl } = postgresConnection(admin.toString());
  const sql = postgres(adminUrl, { ssl, max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length > 0) return;
    try {
      await sql.unsafe(`create database "${name.replaceAll('"', '""')}"`);
    } catch (error) {
      // 42P04 duplicate_database; 23505 when two CREATE DATABASE race on the catalog index.
      const code = (error as { code?: string }).code;
      if (code !== '42P04' && code !== '23505') throw error;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

export interface MigrateOptions {
  /** Another folder of drizzle migrations (`meta/_journal.json` and the SQL files); default: ours. */
  migrationsFolder?: string;
  /**
   * The tag of the last migration to apply (`0036_queue_in_handouts`); default: all of them. For
   * tests and benchmarks that build a database as an earlier release left it.
   */
  until?: string;
}

/** The migrations of `folder` up to the one tagged `until` (all of them without it). */
function migrationsUntil(folder: string, until: string | undefined): MigrationMeta[] {
  const migrations = readMigrationFiles({ migrationsFolder: folder });
  if (until === undefined) return migrations;
  const journal = JSON.parse(readFileSync(path.join(folder, 'meta', '_journal.json'), 'utf8')) as {
    entries: { tag: string }[];
  };
  const last = journal.entries.findIndex((e) => e.tag === until);
  if (last < 0) throw new Error(`no migration tagged ${until} in ${folder}`);
  return migrations.slice(0, last + 1);
}

/**
 * Creates the database if needed and applies the committed migrations. Several processes may call
 * this at once: an advisory lock lets one migrate while the others wait, then find nothing to do.
 */
export async function migrateDatabase(url: string, options: MigrateOptions = {}): Promise<void> {
  await ensureDatabase(url);
  const migrations = migrationsUntil(options.migrationsFolder ?? migrationsFolder, options.until);
  const { url: bare, ssl } = postgresConnection(url);
  const sql = postgres(bare, { ssl, max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await acquireLock(sql);
    try {
      await applyMigrations(sql, migrations);
      // The weeks ahead of a partitioned tasks table (and task_steps' switch, once due), also when
      // no worker's sweeper has run for weeks (a server alone would otherwise meet the end of its
      // partitions); none when made.
      if (options.migrationsFolder === undefined) {
        const partitions = new TaskPartitions(sql);
        await partitions.partitionStepsWhenDue();
        await partitions.makeAhead(WEEKS_AHEAD);
      }
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Takes the migration lock, trying again every LOCK_POLL_MS while another process holds it. Not
 * `pg_advisory_lock`, which waits inside a statement, holding a snapshot: `CREATE INDEX
 * CONCURRENTLY` waits for every transaction of its database with an older snapshot, so the lock
 * holder's concurrent build and a blocked waiter would wait for each other, and PostgreSQL's
 * deadlock detector would abort one of them (seen here with two psql sessions). A `pg_try_advisory_lock`
 * is over at once and leaves nothing for the build to wait for.
 */
async function acquireLock(sql: postgres.Sql): Promise<void> {
  for (;;) {
    const [row] = await sql<{ locked: boolean }[]>`select pg_try_advisory_lock(${MIGRATION_LOCK}) as locked`;
    if (row?.locked) return;
    await sleep(LOCK_POLL_MS);
  }
}

/**
 * drizzle-orm's migrator (pg-core/dialect.js `migrate`, 0.45) with one difference: a migration whose
 * file begins with NO_TRANSACTION_MARKER runs outside any transaction. Everything else is drizzle's:
 * its table `drizzle.__drizzle_migrations` (a row per migration: the SHA-256 of the file's text and
 * the journal's `when` as created_at, from drizzle's own readMigrationFiles), and what is pending: the
 * migrations whose `when` is later than the latest created_at recorded (the hash is written, never
 * compared). So databases migrated by drizzle's migrator, `drizzle-kit` and `tasker migrate` (which
 * counts those rows) see the same record. Consecutive transactional migrations still go in one
 * transaction, as drizzle runs all of them in one.
 */
async function applyMigrations(sql: postgres.Sql, migrations: MigrationMeta[]): Promise<void> {
  await sql`CREATE SCHEMA IF NOT EXISTS "drizzle"`;
  await sql`CREATE TABLE IF NOT EXISTS "drizzle"."__drizzle_migrations" (
    id SERIAL PRIMARY KEY,
    hash text NOT NULL,
    created_at bigint
  )`;
  const [last] = await sql<{ created_at: string | null }[]>`
    select id, hash, created_at from "drizzle"."__drizzle_migrations" order by created_at desc limit 1`;
  const pending = migrations.filter((m) => !last || Number(last.created_at) < m.folderMillis);
  let run: MigrationMeta[] = [];
  const applyRun = async () => {
    if (run.length === 0) return;
    const batch = run;
    run = [];
    await sql.begin(async (tx) => {
      for (const migration of batch) {
        for (const statement of migration.sql) await tx.unsafe(statement);
        await record(tx, migration);
      }
    });
  };
  for (const migration of pending) {
    if (!isNoTransaction(migration)) {
      run.push(migration);
      continue;
    }
    await applyRun();
    for (const statement of migration.sql) {
      const index = concurrentIndexName(statement);
      if (index) await dropIfInvalid(sql, index);
      await sql.unsafe(statement);
    }
    await record(sql, migration);
  }
  await applyRun();
}

function record(sql: postgres.Sql | postgres.TransactionSql, migration: MigrationMeta) {
  return sql`insert into "drizzle"."__drizzle_migrations" ("hash", "created_at") values (${migration.hash}, ${migration.folderMillis})`;
}

/** Whether the migration's file begins with the NO_TRANSACTION_MARKER line. */
export function isNoTransaction(migration: Pick<MigrationMeta, 'sql'>): boolean {
  const first = migration.sql[0] ?? '';
  return first.split('\n', 1)[0]?.trimEnd() === NO_TRANSACTION_MARKER;
}

const IDENTIFIER = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)`;
const CONCURRENT_INDEX = new RegExp(
  String.raw`^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(${IDENTIFIER}(?:\.${IDENTIFIER})?)\s+ON\s`,
  'i',
);

/** The index a `CREATE [UNIQUE] INDEX CONCURRENTLY` statement (after its leading comments) builds, as written. */
export function concurrentIndexName(statement: string): string | undefined {
  return CONCURRENT_INDEX.exec(withoutLeadingComments(statement))?.[1];
}

/** The statement without the `--` comment lines and blank lines before it. */
export function withoutLeadingComments(statement: string): string {
  return statement.replace(/^(?:\s*--[^\n]*(?:\n|$))*\s*/, '');
}

/**
 * A concurrent build that failed (a duplicate for a unique index, a cancel, a lost connection)
 * leaves its index in the catalog, INVALID: never used by queries, yet still updated by every write,
 * and `CREATE INDEX CONCURRENTLY IF NOT EXISTS` would keep it as it is. Dropped here (concurrently,
 * so that writes go on) for the statement to build it again. A valid index of that name (built by
 * a run that stopped later) is kept, and the statement's IF NOT EXISTS skips it. `name` comes from
 * a committed migration; to_regclass finds it on the search path, as the statement does.
 */
async function dropIfInvalid(sql: postgres.Sql, name: string): Promise<void> {
  const [invalid] = await sql`
    select 1 from pg_index where indexrelid = to_regclass(${name}) and not indisvalid`;
  if (invalid) await sql.unsafe(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
}
