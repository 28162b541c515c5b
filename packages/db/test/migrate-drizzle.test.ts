/**
 * migrateDatabase keeps drizzle's bookkeeping (drizzle.__drizzle_migrations): a database migrated
 * by drizzle-orm's own migrator (every migration in one transaction, as before the
 * no-transaction marker) is carried on from where it stands, nothing applied twice, although the
 * rewritten migrations (0009 and others, now CONCURRENTLY) no longer have the hash recorded for
 * them; and what migrateDatabase records is what drizzle's migrator would, row for row, so that
 * drizzle's migrator finds nothing left to do after it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestEnv, type TestEnv } from '@tasker/testing';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDatabase, migrateDatabase, migrationsFolder } from '../src/index.ts';

interface Journal {
  entries: { tag: string; when: number }[];
}
const journal = JSON.parse(
  readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
) as Journal;
const text = (tag: string) => readFileSync(path.join(migrationsFolder, `${tag}.sql`), 'utf8');

const envs: TestEnv[] = [];
const folders: string[] = [];

afterAll(async () => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  await Promise.all(envs.map((env) => env.cleanup()));
});

/** Runs `f` on a connection of its own to `url`. */
async function withSql<T>(url: string, f: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await f(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const recorded = (sql: postgres.Sql) =>
  sql<
    { hash: string; created_at: string }[]
  >`select hash, created_at from drizzle.__drizzle_migrations order by id`;
/**
 * The indexes of the table that holds the tasks rows: `tasks`, or once it is partitioned (0039) its
 * first partition, `tasks_legacy` (the table as it was, its indexes renamed `tasks_legacy_…`: named
 * here as they were).
 */
const indexOids = (sql: postgres.Sql) =>
  sql<{ name: string; oid: number }[]>`
    select regexp_replace(c.relname, '^tasks_legacy_', 'tasks_') as name, c.oid::int as oid
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = coalesce(to_regclass('tasks_legacy'), 'tasks'::regclass) order by 1`;

describe("migrateDatabase and drizzle's migrator", () => {
  it('carries on a database that drizzle migrated in one transaction, applying nothing twice', async () => {
    const env = createTestEnv();
    envs.push(env);
    // The migrations as they were before the marker (the same statements, in a transaction), but
    // the last: what a deployment of the previous release has applied.
    const old = mkdtempSync(path.join(tmpdir(), 'tasker-migrations-'));
    folders.push(old);
    mkdirSync(path.join(old, 'meta'));
    const entries = journal.entries.slice(0, -1);
    for (const e of entries)
      writeFileSync(path.join(old, `${e.tag}.sql`), text(e.tag).replaceAll(/ CONCURRENTLY/g, ''));
    writeFileSync(path.join(old, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries }));
    const url = env.databaseUrl;
    await ensureDatabase(url);
    const before = await withSql(url, async (sql) => {
      await migrate(drizzle(sql), { migrationsFolder: old });
      return { rows: await recorded(sql), indexes: await indexOids(sql) };
    });
    expect(before.rows).toHaveLength(journal.entries.length - 1);

    await migrateDatabase(url);

    await withSql(url, async (sql) => {
      const last = journal.entries.at(-1);
      // The rows recorded before as they were, and one more: the last migration's, as drizzle writes it.
      expect(await recorded(sql)).toEqual([
        ...before.rows,
        {
          hash: createHash('sha256')
            .update(text(last?.tag ?? ''))
            .digest('hex'),
          created_at: String(last?.when),
        },
      ]);
      // No rewritten migration ran again: 0003's DROP INDEX ... IF EXISTS would have dropped and built
      // its indexes anew (new oids), 0009's would have found its indexes and skipped them. (The
      // indexes the last migration dropped aside.)
      // The primary key aside: 0039 makes it (id, created_at), 0038's index.
      const after = (await indexOids(sql)).filter((i) => i.name !== 'tasks_pkey');
      const names = new Set(after.map((i) => i.name));
      expect(after.filter((i) => before.indexes.some((b) => b.name === i.name))).toEqual(
        before.indexes.filter((i) => names.has(i.name)),
      );
      expect(before.indexes.filter((i) => names.has(i.name)).length).toBeGreaterThan(10);
    });
  });

  it("records what drizzle's migrator records, so that it then finds nothing to apply", async () => {
    const env = createTestEnv();
    envs.push(env);
    await migrateDatabase(env.databaseUrl);
    await withSql(env.databaseUrl, async (sql) => {
      const expected = journal.entries.map((e) => ({
        hash: createHash('sha256').update(text(e.tag)).digest('hex'),
        created_at: String(e.when),
      }));
      expect(await recorded(sql)).toEqual(expected);
      // Had it anything to apply, it would fail: CREATE INDEX CONCURRENTLY in its one transaction.
      await migrate(drizzle(sql), { migrationsFolder });
      expect(await recorded(sql)).toEqual(expected);
    });
  });
});
