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
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

for (const app of apps) {
  if (!existsSync(path.join(root, app.entry))) {
    say(`${app.entry} is missing: build first (pnpm start builds it)`);
    process.exit(1);
  }
}

/** @type {{ name: string, child: import('node:child_process').ChildProcess, exited: boolean, code: number | null, signal: string | null }[]} */
const running = [];
let stopping = false;
let failed = false;
let killTimer;
/** Signals sent on purpose: a child that dies of one of them (it had no handler yet) has not crashed. */
const sent = new Set();

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
    process.exitCode = failed ? 1 : 0;
    // Let the signal handlers go so that nothing keeps this process alive.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.removeAllListeners(sig);
  }
}

process.on('SIGINT', () => stop('SIGINT', 'SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM', 'SIGTERM'));
process.on('SIGHUP', () => stop('SIGTERM', 'SIGHUP'));

for (const app of apps) {
  const child = spawn(
    process.execPath,
    ['--import', `data:text/javascript,${watchdog}`, '--enable-source-maps', app.entry],
    {
      cwd: root,
      env: process.env,
      // Own process group: only the signals forwarded from here reach the child.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const entry = { name: app.name, child, exited: false, code: null, signal: null };
  running.push(entry);
  child.on('error', (error) => {
    say(`${app.name} could not start: ${error.message}`);
    onExit(entry, 1, null);
  });
  child.on('exit', (code, signal) => onExit(entry, code, signal));
}

const pids = running.map((e) => `${e.name} (pid ${e.child.pid})`);
say(`started ${pids.join(' and ')}; Ctrl-C stops both`);
