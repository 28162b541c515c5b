/**
 * `tasker migrate` (the Kubernetes migration Job's command, deploy/kubernetes/migrate-job.yaml):
 * creates the database, applies every committed migration, says so in one line; a second run
 * applies nothing; a PostgreSQL that does not answer is exit 3 in one line.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { migrationsFolder, redactUrl } from '@tasker/db';
import { createTestEnv } from '@tasker/testing';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { tasker } from './run.ts';

const env = createTestEnv();
const journal = JSON.parse(readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as {
  entries: { tag: string }[];
};

function migrate(databaseUrl: string) {
  return tasker(['migrate'], { DATABASE_URL: databaseUrl, LOG_LEVEL: 'silent' });
}

afterAll(async () => {
  await env.cleanup();
});

describe('tasker migrate', () => {
  it('creates the database and applies every migration once; a second run applies none', async () => {
    const count = journal.entries.length;
    const latest = journal.entries.at(-1)?.tag;
    const first = await migrate(env.databaseUrl);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(
      // The URL without its password (the embedded PostgreSQL of `pnpm test` has one).
      `migrated ${redactUrl(env.databaseUrl)}: ${count} applied now, ${count} of ${count} in all (latest ${latest})\n`,
    );
    const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from tasks`;
      expect(row?.n).toBe(0);
    } finally {
      await sql.end({ timeout: 5 });
    }

    const again = await migrate(env.databaseUrl);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`: 0 applied now, ${count} of ${count} in all`);
  });

  it('a PostgreSQL that does not answer: exit 3, one line naming the URL without its password', async () => {
    const run = await migrate('postgres://tasker:s3cret@127.0.0.1:1/tasker');
    expect(run.code).toBe(3);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(
      'tasker: PostgreSQL at postgres://tasker:***@127.0.0.1:1/tasker (DATABASE_URL) does not answer (ECONNREFUSED)\n',
    );
  });
});
