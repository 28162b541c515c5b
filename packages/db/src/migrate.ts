import { createRequire } from 'node:module';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { postgresConnection } from './tls.ts';

/** Arbitrary constant: the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 7_428_113_051;

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

/**
 * Creates the database if needed and applies the committed migrations. Several processes may call
 * this at once: an advisory lock lets one migrate while the others wait, then find nothing to do.
 */
export async function migrateDatabase(url: string): Promise<void> {
  await ensureDatabase(url);
  const { url: bare, ssl } = postgresConnection(url);
  const sql = postgres(bare, { ssl, max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await migrate(drizzle(sql), { migrationsFolder });
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}
