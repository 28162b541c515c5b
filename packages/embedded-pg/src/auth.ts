// The embedded PostgreSQL trusts nobody: every connection gives the superuser's password, a random
// one generated for the cluster and kept in PASSWORD_FILE inside its data directory (mode 600, owned
// by the cluster's owner, like the rest of it). pg_hba.conf asks for it (scram-sha-256) on every
// kind of connection.
//
// One path for new clusters and for clusters made before passwords (which trusted every local
// user): whenever the data directory has no password file, a password is set in single-user mode
// (no network, so no moment of trust), then pg_hba.conf is rewritten, then the file is written,
// in that order, so a start killed half-way just does it again.
import { spawn } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { chmod, chown, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Binaries } from './binaries.ts';
import { EmbeddedPostgresError } from './errors.ts';
import type { RunAs } from './os-user.ts';

/** The superuser's password, in the data directory. */
export const PASSWORD_FILE = 'superuser.password';

/** The whole of pg_hba.conf. The Unix socket is off (see launch); `local` covers it if turned on. */
export const HBA_CONF = `# Written by @tasker/embedded-pg: every connection gives the superuser's password
# (scram-sha-256), kept in ${PASSWORD_FILE} beside this file, readable by its owner only.
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 scram-sha-256
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
`;

/** The password of the cluster in `dataDir`, or undefined when it has none (made before passwords). */
export async function readPassword(dataDir: string): Promise<string | undefined> {
  const file = path.join(dataDir, PASSWORD_FILE);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new EmbeddedPostgresError(
      `cannot read the embedded PostgreSQL's password in ${file} (${code}): run as the user that owns it, or as root`,
      'password',
    );
  }
}

/**
 * The password of the cluster in `dataDir` (stopped), set first if it has none. `log` hears of
 * clusters upgraded from trust; a new one (`fresh`) is set up silently.
 */
export async function ensurePassword({
  dataDir,
  binaries,
  runAs,
  user,
  fresh,
  log,
}: {
  dataDir: string;
  binaries: Binaries;
  runAs: RunAs | undefined;
  user: string;
  fresh: boolean;
  log: (message: string) => void;
}): Promise<string> {
  const existing = await readPassword(dataDir);
  if (existing) return existing;
  // base64url: nothing to escape in a URL or in SQL, and no SASLprep needed.
  const password = randomBytes(24).toString('base64url');
  const role = `"${user.replaceAll('"', '""')}"`;
  await singleUser(binaries, dataDir, runAs, `ALTER ROLE ${role} PASSWORD '${scramVerifier(password)}'`);
  await writeOwned(path.join(dataDir, 'pg_hba.conf'), HBA_CONF, runAs);
  await writeOwned(path.join(dataDir, PASSWORD_FILE), `${password}\n`, runAs);
  if (!fresh) {
    log(
      `this cluster had no ${PASSWORD_FILE} (made before passwords, it trusted every local user): set a new password for ${role}, kept in ${path.join(dataDir, PASSWORD_FILE)}, and made pg_hba.conf require it (scram-sha-256)`,
    );
  }
  return password;
}

/**
 * A SCRAM-SHA-256 verifier (RFC 5802, 7677) in PostgreSQL's format: what `ALTER ROLE … PASSWORD`
 * stores as is, so the password itself never reaches the server (nor its log, should it fail).
 */
export function scramVerifier(password: string, salt = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Runs one SQL statement in single-user mode (the bootstrap superuser, no network), or throws. */
async function singleUser(
  binaries: Binaries,
  dataDir: string,
  runAs: RunAs | undefined,
  statement: string,
): Promise<void> {
  const child = spawn(binaries.postgres, ['--single', '-D', dataDir, '-c', 'exit_on_error=on', 'postgres'], {
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  let output = '';
  for (const stream of [child.stdout, child.stderr])
    stream?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
  child.stdin?.on('error', () => {}); // EPIPE if it exited at once; its output says why
  child.stdin?.end(`${statement};\n`);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      output += `FATAL: ${error.message}`;
      resolve(null);
    });
    child.once('close', resolve);
  });
  const failure = /\b(?:ERROR|FATAL|PANIC):\s+(.*)/.exec(output);
  if (code !== 0 || failure) {
    throw new EmbeddedPostgresError(
      `could not set the superuser's password of ${dataDir} (postgres --single: ${failure?.[1]?.trim() ?? `exit code ${code}`})`,
      'password',
    );
  }
}

/** Writes a file readable by its owner only (the cluster's owner), atomically. */
async function writeOwned(file: string, content: string, runAs: RunAs | undefined): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  await writeFile(temporary, content, { mode: 0o600 });
  await chmod(temporary, 0o600);
  if (runAs) await chown(temporary, runAs.uid, runAs.gid);
  await rename(temporary, file);
}
