// A PgBouncer in transaction mode in front of the tests' PostgreSQL, as a user would run one (issue
// 24): every client transaction may run on another server connection, so nothing session-bound
// (prepared statements, LISTEN, session advisory locks, SETs) survives through it.
//
// scripts/with-pgbouncer.mjs imports this file as it is (node strips the types): no syntax that
// type stripping cannot erase, and relative imports with their .ts extension.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { freePort } from './processes.ts';
import { spawnWatched } from './watchdog.ts';

const run = promisify(execFile);

/** Where Debian's package puts it (`apt-get install pgbouncer`), unless PGBOUNCER names another. */
const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The pgbouncer binary: PGBOUNCER, else the first of the usual places that exists; undefined when none. */
export function findPgBouncer(): string | undefined {
  const named = process.env.PGBOUNCER;
  if (named) return named;
  const onPath = (process.env.PATH ?? '').split(path.delimiter).map((dir) => path.join(dir, 'pgbouncer'));
  return [...CANDIDATES, ...onPath].find((file) => existsSync(file));
}

export interface PgBouncerOptions {
  /**
   * The PostgreSQL it pools: host, port, user and password are taken from this URL (the database
   * part is ignored: every database name a client asks for is passed on). Default:
   * TEST_DATABASE_URL, else postgres://root@127.0.0.1:5432/postgres.
   */
  target?: string;
  /** Server connections per database (`default_pool_size`). Default 10. */
  poolSize?: number;
  /**
   * Whether commits through it wait for the disk. Default false: its server connections run
   * `set synchronous_commit = off` first (`connect_query`), as the worker's own connections do
   * without a pooler (a pooler passes on no such startup parameter, so behind one the worker's
   * commits are durable unless its database entry says so: docs/architecture.md). The tests'
   * timings then match their runs without a pooler, on a machine whose disk is busy.
   */
  durableCommits?: boolean;
}

export interface PgBouncer {
  port: number;
  /** postgres://<target's user>@127.0.0.1:<port>/ (any password is taken: `auth_type = any`). */
  url: string;
  /** The ini file it runs with, in a folder of its own that stop() deletes. */
  ini: string;
  /** The pooler's URL of `database`. */
  urlFor(database: string): string;
  /** Everything it logged (stderr). */
  output(): string;
  /**
   * A `SHOW` of its console (`stats`: transactions per database so far; `clients`: who is connected,
   * with `application_name`; `pools`), one row per line, every value as text.
   */
  show(what: 'stats' | 'clients' | 'pools' | 'servers'): Promise<Record<string, string>[]>;
  /** SIGTERM (PgBouncer's fast exit: clients are cut), then its folder is deleted. */
  stop(): Promise<void>;
}

/** A value of PgBouncer's connection strings (libpq's syntax): quoted, `\` and `'` escaped. */
function quote(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/**
 * Starts a PgBouncer on a free loopback port, in transaction mode, every database name passed on to
 * `target` (`* = host=… port=… user=…`), clients let in without a password (`auth_type = any`: it
 * logs in to PostgreSQL as `target`'s user). `ignore_startup_parameters = extra_float_digits,options`
 * as a user's would have: any other startup parameter is refused (`unsupported startup parameter`).
 * Its ini lives in a new temporary folder of the user it runs as (configDir); as root that is the OS
 * user `postgres` (PgBouncer refuses to run as root).
 */
export async function startPgBouncer({
  target,
  poolSize = 10,
  durableCommits = false,
}: PgBouncerOptions = {}): Promise<PgBouncer> {
  const binary = findPgBouncer();
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install -y pgbouncer, or set PGBOUNCER)');
  const server = new URL(
    target ?? process.env.TEST_DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/postgres',
  );
  const user = decodeURIComponent(server.username) || 'postgres';
  const password = decodeURIComponent(server.password);
  const host = server.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? await userIds('postgres') : undefined;
  const dir = await configDir(owner);
  // A port taken between freePort and PgBouncer's bind: once more on another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const ini = path.join(dir, 'pgbouncer.ini');
    await writeFile(
      ini,
      [
        '[databases]',
        `* = host=${quote(host)} port=${server.port || '5432'} user=${quote(user)}${password ? ` password=${quote(password)}` : ''}${durableCommits ? '' : ` connect_query=${quote('set synchronous_commit = off')}`}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = any',
        // Its console (database `pgbouncer`: SHOW STATS, SHOW POOLS) for the tests.
        `admin_users = ${user}`,
        'pool_mode = transaction',
        'ignore_startup_parameters = extra_float_digits,options',
        'max_client_conn = 5000',
        `default_pool_size = ${poolSize}`,
        // A test fails rather than waits two minutes for a server connection.
        'query_wait_timeout = 60',
        // A refused login (a database a test dropped) is not held against the next one for 15 s.
        'server_login_retry = 1',
        // Idle server connections close after 10 s, not 10 min: the test files' databases would
        // otherwise keep up to default_pool_size each of PostgreSQL's 100 (the pools of the
        // processes under test close theirs after 30 s idle).
        'server_idle_timeout = 10',
        // A line per client connection would be most of its output over a whole suite.
        'log_connections = 0',
        'log_disconnections = 0',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    // Its own (it holds the target's password), and readable by PgBouncer after it has dropped
    // root: it reads it again on a RELOAD or SIGHUP.
    if (owner) await chown(ini, owner.uid, owner.gid);
    let output = '';
    let prioritySet = false;
    let onListening: (() => void) | undefined;
    const pooler = spawnWatched(binary, [...(asRoot ? ['-u', 'postgres'] : []), ini], {
      signal: 'SIGTERM',
      removes: dir,
      onOutput: (text) => {
        output += text;
        if (output.length > 1_000_000) output = output.slice(-500_000);
        if (onListening && output.includes(`listening on 127.0.0.1:${port}`)) onListening();
        const pid = pooler.pid();
        if (!prioritySet && pid !== undefined) {
          prioritySet = true;
          // The tests run niced (`nice -n 19`), and so would it: behind every query, starved on a
          // busy machine, it would add its waits to theirs. It runs at PostgreSQL's priority where
          // that may be set (as root); elsewhere as it is.
          try {
            setPriority(pid, 0);
          } catch {
            // not allowed: stays niced
          }
        }
      },
    });
    const started = await new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pgbouncer did not start within 10 s:\n${output}`)),
        10_000,
      );
      onListening = () => {
        clearTimeout(timer);
        resolve(true);
      };
      pooler.shell.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      void pooler.exited.then((code) => {
        clearTimeout(timer);
        if (/Address already in use/i.test(output) && attempt < 3) resolve(false);
        else reject(new Error(`pgbouncer exited with ${code} before it listened:\n${output}`));
      });
    }).catch(async (error: unknown) => {
      await pooler.stop();
      await rm(dir, { recursive: true, force: true });
      throw error;
    });
    if (!started) continue;
    const base = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/`;
    return {
      port,
      url: base,
      ini,
      urlFor: (database) => `${base}${encodeURIComponent(database)}`,
      output: () => output,
      show: async (what) => {
        // The console speaks the simple protocol only, and has no pg_type to read.
        const sql = postgres(`${base}pgbouncer`, {
          max: 1,
          fetch_types: false,
          prepare: false,
          onnotice: () => {},
        });
        try {
          return [...(await sql.unsafe<Record<string, string>[]>(`show ${what}`).simple())];
        } finally {
          await sql.end({ timeout: 2 });
        }
      },
      stop: async () => {
        await pooler.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/** An OS user's ids (`id`, which asks NSS as PgBouncer's setuid does). */
async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all(
    ['-u', '-g'].map(async (flag) => Number((await run('id', [flag, name])).stdout.trim())),
  );
  if (uid === undefined || gid === undefined || Number.isNaN(uid) || Number.isNaN(gid))
    throw new Error(`no ids for the OS user ${name}`);
  return { uid, gid };
}

/** Whether every folder from `dir` up to / lets any user through (o+x). */
async function searchableByAll(dir: string): Promise<boolean> {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    if (((await stat(at)).mode & 0o001) === 0) return false;
    if (at === path.dirname(at)) return true;
  }
}

/**
 * A new folder (mode 700) for PgBouncer's ini, owned by `owner` when it runs as another user (as
 * root: `postgres`), in the temporary folder unless that user could not reach it there: TMPDIR
 * under root's home (mode 700, as CI's clone is) would let PgBouncer read its ini at start, as
 * root, but not again on a RELOAD once it has dropped to `postgres`. Then /tmp.
 */
async function configDir(owner: { uid: number; gid: number } | undefined): Promise<string> {
  const base = owner && !(await searchableByAll(tmpdir())) ? '/tmp' : tmpdir();
  const dir = await mkdtemp(path.join(base, 'tasker-pgbouncer-'));
  await chmod(dir, 0o700);
  if (owner) await chown(dir, owner.uid, owner.gid);
  return dir;
}
