// scripts/with-embedded-pg.mjs, the wrapper of `pnpm test`.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, processes, repoRoot } from './helpers.ts';

const run = promisify(execFile);

beforeAll(() => assertBuilt('packages/embedded-pg/dist/index.js'));

describe('node scripts/with-embedded-pg.mjs <command>', () => {
  it("runs the command against a throwaway PostgreSQL, then removes it and exits with the command's code", async () => {
    // The command: query the server it was given, print what it saw, exit 7.
    const command = `
      import postgres from 'postgres';
      const sql = postgres(process.env.TEST_DATABASE_URL, { max: 1 });
      const [row] = await sql\`select current_setting('server_version_num') as version, current_setting('fsync') as fsync, current_setting('data_directory') as dir\`;
      await sql.end();
      console.log(JSON.stringify({ url: process.env.TEST_DATABASE_URL, mode: process.env.TEST_MODE, ...row }));
      process.exit(7);
    `;
    const result = await run(
      process.execPath,
      [
        path.join(repoRoot, 'scripts/with-embedded-pg.mjs'),
        process.execPath,
        '--input-type=module',
        '-e',
        command,
      ],
      // Run from this package, whose node_modules has `postgres` for the command.
      { cwd: path.join(repoRoot, 'packages/embedded-pg') },
    ).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result?.code).toBe(7);
    const seen = JSON.parse(result?.stdout.trim() ?? '') as {
      url: string;
      mode: string;
      version: string;
      fsync: string;
      dir: string;
    };
    // The cluster's password is in the URL, and printed nowhere.
    const password = new URL(seen.url).password;
    expect(password).toMatch(/^[\w-]{32}$/);
    expect(seen.url).toMatch(/^postgres:\/\/[^:@/]+:[\w-]+@127\.0\.0\.1:\d+\/postgres$/);
    expect(result?.stderr).not.toContain(password);
    expect(seen.mode).toBe('postgres');
    expect(seen.version).toMatch(/^18\d{4}$/);
    expect(seen.fsync).toBe('off');
    expect(result?.stderr).toMatch(
      /\[with-embedded-pg\] PostgreSQL 18 on 127\.0\.0\.1:\d+ in \S+ \(initdb \d+ ms/,
    );
    // Stopped and deleted.
    expect(existsSync(seen.dir)).toBe(false);
    expect((await processes()).filter((p) => p.args.includes(seen.dir))).toEqual([]);
  });
});
