import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { currentUserName } from './embedded.ts';
import { isPostgresOn } from './processes.ts';

/**
 * The URL of the embedded PostgreSQL that runs on `dataDir` now (a `pnpm start` in another
 * terminal), read from its `postmaster.pid` (line 1: the pid, line 4: the port); undefined when
 * none runs there. For tools that need the database while `pnpm start` runs, such as the CLI.
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
  return `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}
