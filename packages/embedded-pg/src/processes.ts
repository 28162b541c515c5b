import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readlink, realpath } from 'node:fs/promises';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Whether a process with this pid exists (whoever owns it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a running process, or undefined when there is none. */
export async function commandLine(pid: number): Promise<string | undefined> {
  if (!isAlive(pid)) return undefined;
  if (process.platform === 'linux') {
    try {
      return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
    } catch {
      return undefined;
    }
  }
  try {
    return (await run('ps', ['-ww', '-o', 'args=', '-p', String(pid)])).stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a PostgreSQL server runs under this pid on this data directory. A postmaster's working
 * directory is its data directory, which settles it on Linux whatever path (symlinks...) either
 * side used. Where that can't be read, any live `postgres` counts: better to refuse to start than
 * to remove the lock file of a running server.
 */
export async function isPostgresOn(pid: number, dataDir: string): Promise<boolean> {
  const command = await commandLine(pid);
  if (!command?.includes('postgres')) return false;
  if (process.platform === 'linux') {
    try {
      const [cwd, dir] = await Promise.all([readlink(`/proc/${pid}/cwd`), realpath(dataDir)]);
      return cwd === dir;
    } catch {
      // not ours to read: fall through
    }
  }
  return true;
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  server.listen({ port, host: '127.0.0.1', exclusive: true });
  try {
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => Promise.reject(error)),
    ]);
  } catch {
    return false;
  }
  await new Promise((resolve) => server.close(resolve));
  return true;
}

/** A port that was free on 127.0.0.1 a moment ago (chosen by the kernel). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen({ port: 0, host: '127.0.0.1', exclusive: true });
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
