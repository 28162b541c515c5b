// Where the embedded PostgreSQL keeps things, and the one rule for a clone its OS user can't enter.
//
// As root, PostgreSQL runs as the OS user `postgres`, which must reach its binaries and its data.
// The rule: whatever of the two `postgres` cannot reach inside the clone (a clone under root's home,
// mode 700, say) lives under STATE_DIR instead, root-owned and world-enterable:
// - the binaries: a copy of the binaries' package in STATE_DIR/embedded-pg/<package>-<version>-<hash>
//   (see binary-cache.ts), made once and shared by every clone;
// - the data of `pnpm start`: STATE_DIR/clones/<clone folder name>-<hash of its path>/pg, kept
//   across restarts and tied to that clone.
// Anything `postgres` can reach is used where it is, as before (./.tasker/pg, node_modules).
// TASKER_DATA_DIR is never moved: an unreachable one is an error that names it.
import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { EmbeddedPostgresError } from './errors.ts';
import { blockingFolder, describeBlocked, existingPostgresOsUser } from './os-user.ts';

/** Where root keeps what the OS user `postgres` cannot reach inside a clone. */
export const STATE_DIR = '/var/lib/tasker';

/** The data directory of `pnpm start`, and why it is not in the clone when it is not. */
export interface DataDirChoice {
  /** The cluster's directory (absolute). */
  dataDir: string;
  /** Set when the data lives outside the clone: why, in one line. */
  note: string | undefined;
}

/**
 * The data directory of the embedded PostgreSQL of a project (a clone of this repository):
 * `$TASKER_DATA_DIR/pg` when that variable is set (relative to `projectDir`), else
 * `<projectDir>/.tasker/pg`, unless (as root) the OS user `postgres` cannot reach it: then
 * `STATE_DIR/clones/<name>-<hash>/pg` (see the rule above). Nothing is created here.
 */
export async function chooseDataDir(
  projectDir: string,
  taskerDataDir: string | undefined = process.env.TASKER_DATA_DIR,
): Promise<DataDirChoice> {
  const user = await existingPostgresOsUser();
  const root = process.getuid?.() === 0;
  if (taskerDataDir) {
    const dataDir = path.join(path.resolve(projectDir, taskerDataDir), 'pg');
    const blocked = root ? await blockingFolder(dataDir, user) : undefined;
    if (blocked) {
      throw new EmbeddedPostgresError(
        `TASKER_DATA_DIR is ${taskerDataDir}, but PostgreSQL runs as the OS user postgres (this process is root), which ${describeBlocked(blocked)}: set TASKER_DATA_DIR to a directory it can reach, or unset it`,
        'data-dir',
      );
    }
    return { dataDir, note: undefined };
  }
  const inClone = path.join(path.resolve(projectDir), '.tasker', 'pg');
  const blocked = root ? await blockingFolder(inClone, user) : undefined;
  if (!blocked) return { dataDir: inClone, note: undefined };
  const dataDir = path.join(STATE_DIR, 'clones', await cloneKey(projectDir), 'pg');
  return {
    dataDir,
    note: `the OS user postgres ${describeBlocked(blocked)}, so the data of this clone lives in ${dataDir} instead of ${inClone}`,
  };
}

/** `<folder name>-<12 hex digits of the SHA-256 of its real path>`: one per clone, readable. */
async function cloneKey(projectDir: string): Promise<string> {
  const real = await realpath(projectDir);
  const hash = createHash('sha256').update(real).digest('hex').slice(0, 12);
  const name = path.basename(real).replace(/[^\w.-]/g, '_') || 'root';
  return `${name}-${hash}`;
}
