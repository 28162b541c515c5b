import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readPassword } from './auth.ts';
import { connectionUrl, currentUserName } from './embedded.ts';
import { isPostgresOn } from './processes.ts';

/**
 * The URL (with the password) of the embedded PostgreSQL that runs on `dataDir` now (a `pnpm start`
 * in another terminal), read from its `postmaster.pid` (line 1: the pid, line 4: the port) and its
 * password file; undefined when none runs there. For tools that need the database while `pnpm
 * start` runs, such as the CLI. Throws when the password file can't be read by this user.
 */
export async function runningEmbeddedUrl(dataDir: string, database = 'tasker'): Promise<string | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  if (!(await isPostgresOn(pid, dataDir))) return undefined;
  const user = currentUserName(); // the superuser start.mjs had initdb create
  // No password file: a cluster started by an earlier version, which trusts local connections.
  const password = await readPassword(dataDir);
  return connectionUrl({ user, password, port, database });
}
