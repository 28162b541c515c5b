import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';

const run = promisify(execFile);

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Throws unless these built files exist (turbo's `test` task builds them first). */
export function assertBuilt(...files: string[]): void {
  for (const file of files) {
    if (!existsSync(path.join(repoRoot, file))) throw new Error(`${file} is missing: run pnpm build first`);
  }
}

/** A new temporary folder that the OS user `postgres` can enter (PostgreSQL runs as it under root). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

export interface Proc {
  pid: number;
  ppid: number;
  stat: string;
  args: string;
}

/** Every process on the machine, from `ps`, zombies (exited, not yet reaped) left out. */
export async function processes(): Promise<Proc[]> {
  const { stdout } = await run('ps', ['-e', '-ww', '-o', 'pid=,ppid=,stat=,args='], { maxBuffer: 16 << 20 });
  return stdout
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), stat: m[3] ?? '', args: m[4] ?? '' }))
    .filter((p) => !p.stat.startsWith('Z'));
}

/** Runs one query on a database of the server, on a connection of its own. */
export async function query<T extends Record<string, unknown>>(
  url: string,
  text: string,
  params: (string | number)[] = [],
): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    return [...(await sql.unsafe<T[]>(text, params))];
  } finally {
    await sql.end({ timeout: 5 });
  }
}
