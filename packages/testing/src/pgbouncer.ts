// A PgBouncer in transaction mode in front of the tests' PostgreSQL, as a user would run one (issue
// 24): every client transaction may run on another server connection, so nothing session-bound
// (prepared statements, LISTEN, session advisory locks, SETs) survives through it.
//
// scripts/with-pgbouncer.mjs imports this file as it is (node strips the types): no syntax that
// type stripping cannot erase, and relative imports with their .ts extension.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { freePort } from './processes.ts';

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
 * Its ini lives in a new temporary folder; as root it runs as the OS user `postgres` (PgBouncer
 * refuses to run as root).
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
  const dir = await mkdtemp(path.join(tmpdir(), 'tasker-pgbouncer-'));
  await chmod(dir, 0o755);
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
      { mode: 0o644 },
    );
    await chmod(ini, 0o644);
    const asRoot = process.getuid?.() === 0;
    const child = spawn(
      '/bin/sh',
      ['-c', WATCHDOG, 'sh', binary, ...(asRoot ? ['-u', 'postgres'] : []), ini],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let output = '';
    let pid: number | undefined;
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.length > 1_000_000) output = output.slice(-500_000);
      if (pid === undefined) {
        const said = /pgbouncer pid (\d+)/.exec(output);
        if (said) {
          pid = Number(said[1]);
          // The tests run niced (`nice -n 19`), and so would it: behind every query, starved on a
          // busy machine, it would add its waits to theirs. It runs at PostgreSQL's priority where
          // that may be set (as root); elsewhere as it is.
          try {
            setPriority(pid, 0);
          } catch {
            // not allowed: stays niced
          }
        }
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const started = await new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.stdin?.end();
        reject(new Error(`pgbouncer did not start within 10 s:\n${output}`));
      }, 10_000);
      const check = () => {
        if (output.includes(`listening on 127.0.0.1:${port}`)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      child.stderr?.on('data', check);
      child.stdout?.on('data', check);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      void exited.then((code) => {
        clearTimeout(timer);
        if (/Address already in use/i.test(output) && attempt < 3) resolve(false);
        else reject(new Error(`pgbouncer exited with ${code} before it listened:\n${output}`));
      });
    }).catch(async (error: unknown) => {
      await rm(dir, { recursive: true, force: true });
      throw error;
    });
    if (!started) continue;
    const base = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/`;
    return {
      port,
      url: base,
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
        await stopChild(child, exited, pid);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/**
 * PgBouncer under a shell that stops it (SIGTERM: its fast exit) when the shell's stdin closes:
 * on `stop`, or when this process is gone without calling it (a test runner's worker killed), so it
 * is never left behind. The shell also ends when PgBouncer does (it could not listen, say), with
 * its exit code. "$@": the binary and its arguments.
 */
const WATCHDOG = [
  'exec 3<&0',
  '"$@" &',
  'pb=$!',
  'echo "pgbouncer pid $pb" >&2',
  '(cat <&3 >/dev/null; kill $pb 2>/dev/null) &',
  'w=$!',
  'wait $pb',
  'code=$?',
  'kill $w 2>/dev/null',
  'exit $code',
].join('\n');

async function stopChild(
  child: ChildProcess,
  exited: Promise<number | null>,
  pid: number | undefined,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.stdin?.end();
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 5000);
    }),
  ]);
  clearTimeout(timer);
  if (!inTime) {
    try {
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
    child.kill('SIGKILL');
    await exited;
  }
}
