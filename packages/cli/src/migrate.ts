import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT } from './errors.ts';

/** The migrations drizzle has recorded as applied in `url`'s database; 0 when it or the record does not exist yet. */
async function appliedCount(url: string): Promise<number> {
  const { postgresConnection } = await import('@tasker/db');
  const { default: postgres } = await import('postgres');
  const { url: bare, ssl } = postgresConnection(url);
  const sql = postgres(bare, { ssl, max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    return row?.n ?? 0;
  } catch (error) {
    // 3D000: no such database; 3F000: no schema drizzle; 42P01: no table: nothing applied yet.
    if (['3D000', '3F000', '42P01'].includes((error as { code?: string }).code ?? '')) return 0;
    throw error;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * `tasker migrate`: creates the database of DATABASE_URL (DATABASE_DIRECT_URL when a pooler is in
 * front) if it does not exist and applies the committed migrations, under the advisory lock every
 * process takes for them (packages/db's migrateDatabase), then exits. Servers and workers do the
 * same at start; this runs it as a step of its own (a Kubernetes Job, a release script), so that a
 * migration's failure is seen there.
 */
export function migrateCommand(program: Command, databaseUrl: () => Promise<string>): void {
  program
    .command('migrate')
    .description(
      "Create DATABASE_URL's database if missing and apply Tasker's migrations, then exit (servers and workers also do at start)",
    )
    .action(async () => {
      const url = await databaseUrl();
      const { isDatabaseUnavailable, migrateDatabase, migrationsFolder, redactUrl } = await import(
        '@tasker/db'
      );
      const journal = JSON.parse(
        readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
      ) as {
        entries: { tag: string }[];
      };
      try {
        const before = await appliedCount(url);
        await migrateDatabase(url);
        const after = await appliedCount(url);
        const latest = journal.entries.at(-1)?.tag ?? 'none';
        process.stdout.write(
          `migrated ${redactUrl(url)}: ${after - before} applied now, ${after} of ${journal.entries.length} in all (latest ${latest})\n`,
        );
      } catch (error) {
        // PostgreSQL not there (yet), or starting up (57P03), as the engine's start tells them.
        if (isDatabaseUnavailable(error)) {
          const code = (error as { code?: string }).code ?? 'unavailable';
          throw new CliError(
            `PostgreSQL at ${redactUrl(url)} (${process.env.DATABASE_DIRECT_URL ? 'DATABASE_DIRECT_URL' : 'DATABASE_URL'}) does not answer (${code})`,
            EXIT.unavailable,
          );
        }
        throw error;
      }
    });
}
