// The embedded PostgreSQL trusts nobody: a generated password, scram-sha-256, and clusters made
// before passwords (trust) upgraded in place.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { findBinaries } from '../src/binaries.ts';
import { currentUserName } from '../src/embedded.ts';
import { type EmbeddedPostgres, runningEmbeddedUrl, startEmbeddedPostgres } from '../src/index.ts';
import { postgresOsUser } from '../src/os-user.ts';
import { query, tempDir } from './helpers.ts';

const run = promisify(execFile);

let tmp: string;
const servers: EmbeddedPostgres[] = [];
async function start(options: Parameters<typeof startEmbeddedPostgres>[0]): Promise<EmbeddedPostgres> {
  const pg = await startEmbeddedPostgres({ port: 0, ...options });
  servers.push(pg);
  return pg;
}

beforeAll(async () => {
  tmp = await tempDir('tasker-embedded-auth-test-');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((pg) => pg.stop()));
});
afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/**
 * What the server answers a startup message for `user`, before any password is sent: the
 * authentication request's code (0: in without a password, 10: SASL, i.e. SCRAM) and, for 10, the
 * mechanisms offered. Asked on the wire so that no client library's behaviour is in between.
 */
async function authenticationRequest(port: number, user: string): Promise<{ code: number; detail: string }> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    const body = Buffer.from(`user\0${user}\0database\0postgres\0\0`);
    const header = Buffer.alloc(8);
    header.writeInt32BE(8 + body.length, 0);
    header.writeInt32BE(196608, 4); // protocol 3.0
    socket.write(Buffer.concat([header, body]));
    let data = Buffer.alloc(0);
    while (data.length < 5 || data.length < 1 + data.readInt32BE(1)) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      data = Buffer.concat([data, chunk]);
    }
    const type = String.fromCharCode(data[0] ?? 0);
    const message = data.subarray(5, 1 + data.readInt32BE(1));
    if (type !== 'R') return { code: -1, detail: `${type} ${message.toString('latin1')}` };
    return { code: message.readInt32BE(0), detail: message.subarray(4).toString('latin1') };
  } finally {
    socket.destroy();
  }
}

/** Connects with this URL and runs `select 1`; the error's SQLSTATE (or message) when refused. */
async function tryConnect(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await sql`select 1`;
    return 'accepted';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function withPassword(url: string, password: string | undefined): string {
  const parsed = new URL(url);
  parsed.password = password ?? '';
  return parsed.toString();
}

/** The cluster's owner: the OS user postgres as root, else this process's user. */
async function ownerUid(): Promise<number> {
  return process.getuid?.() === 0
    ? Number((await run('id', ['-u', 'postgres'])).stdout.trim())
    : (process.getuid?.() ?? -1);
}

async function expectLockedDown(pg: EmbeddedPostgres): Promise<void> {
  // The server asks for SCRAM before letting anyone in.
  expect(await authenticationRequest(pg.port, pg.user)).toEqual({
    code: 10,
    detail: expect.stringContaining('SCRAM-SHA-256'),
  });
  // `url` names the database `tasker`, which is not created here.
  const url = pg.urlFor('postgres');
  expect(await tryConnect(withPassword(url, undefined))).toBe('28P01');
  expect(await tryConnect(withPassword(url, 'not-the-password'))).toBe('28P01');
  expect(await tryConnect(url)).toBe('accepted');
  const hba = await readFile(path.join(pg.dataDir, 'pg_hba.conf'), 'utf8');
  expect(hba).not.toMatch(/\btrust\b/);
  expect(hba).toMatch(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+scram-sha-256$/m);
  const file = await stat(pg.passwordFile);
  expect(file.mode & 0o777).toBe(0o600);
  expect(file.uid).toBe(await ownerUid());
  expect(await query(url, 'show unix_socket_directories')).toEqual([{ unix_socket_directories: '' }]);
}

describe('the password of the embedded PostgreSQL', () => {
  it('is generated for a new cluster: without it, or with a wrong one, a connection is refused; with it, accepted', async () => {
    const pg = await start({ dataDir: path.join(tmp, 'new') });
    await expectLockedDown(pg);
    expect(pg.passwordFile).toBe(path.join(tmp, 'new', 'superuser.password'));
    const password = (await readFile(pg.passwordFile, 'utf8')).trim();
    expect(password).toMatch(/^[\w-]{32}$/);
    expect(new URL(pg.url).password).toBe(password);
    expect(pg.urlWithoutPassword).toBe(withPassword(pg.url, undefined));
    // What the CLI reads while `pnpm start` runs: the same URL, password included.
    expect(await runningEmbeddedUrl(pg.dataDir)).toBe(pg.url);
  });

  it('is set in place on a cluster made before passwords (trust), which keeps its data and then stays locked', async () => {
    const dataDir = path.join(tmp, 'old');
    await makeTrustCluster(dataDir);
    expect(await readFile(path.join(dataDir, 'pg_hba.conf'), 'utf8')).toMatch(
      /^host\s+all\s+all\s+127\S+\s+trust$/m,
    );

    const messages: string[] = [];
    const pg = await start({ dataDir, log: (m) => messages.push(m) });
    await expectLockedDown(pg);
    expect(pg.initdbMs).toBeUndefined();
    expect(messages).toContain(
      `this cluster had no superuser.password (made before passwords, it trusted every local user): set a new password for "${currentUserName()}", kept in ${pg.passwordFile}, and made pg_hba.conf require it (scram-sha-256)`,
    );
    expect(await query(pg.urlFor('postgres'), 'select note from kept')).toEqual([
      { note: 'made under trust' },
    ]);
    const password = await readFile(pg.passwordFile, 'utf8');
    await pg.stop();

    // Started again: the same password, nothing more to do.
    const again = await start({ dataDir, log: (m) => messages.push(m) });
    expect(messages.filter((m) => m.includes('had no superuser.password'))).toHaveLength(1);
    expect(await readFile(again.passwordFile, 'utf8')).toBe(password);
    await expectLockedDown(again);
  });
});

/**
 * A cluster as the code before passwords made it (initdb --auth=trust, no password file), holding
 * a table: written in single-user mode, so no server listens on a trusting cluster here.
 */
async function makeTrustCluster(dataDir: string): Promise<void> {
  const runAs = await postgresOsUser();
  const binaries = await findBinaries(runAs);
  const as = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
  await mkdir(dataDir, { mode: 0o700 });
  if (runAs) await run('chown', [`${runAs.uid}:${runAs.gid}`, dataDir]);
  await run(
    binaries.initdb,
    [
      `--pgdata=${dataDir}`,
      `--username=${currentUserName()}`,
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-instructions',
    ],
    { env: { ...process.env, LC_ALL: 'C' }, ...as },
  );
  const single = spawn(binaries.postgres, ['--single', '-D', dataDir, '-c', 'exit_on_error=on', 'postgres'], {
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['pipe', 'ignore', 'pipe'],
    ...as,
  });
  let errors = '';
  single.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  single.stdin?.end("create table kept as select 'made under trust' as note;\n");
  const [code] = (await once(single, 'close')) as [number | null];
  expect({ code, errors: errors.match(/ERROR.*|FATAL.*/g) }).toEqual({ code: 0, errors: null });
}
