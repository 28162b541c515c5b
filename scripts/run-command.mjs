// Runs the command that scripts/with-*.mjs wrap, with `env` added to this process's environment,
// and resolves with its exit code (128 + the signal number if a signal ended it; 127 if it could not
// start). The command stays in this process group (a terminal's Ctrl-C reaches it directly, so
// SIGINT here only waits for it); SIGTERM and SIGHUP sent to the wrapper alone are passed on.
//
// The wrappers' servers (redis-server, PgBouncer) run in process groups of their own
// (packages/testing/src/watchdog.ts): a Ctrl-C does not reach them, the wrapper stops them once the
// command has ended. A second SIGINT, SIGTERM or SIGHUP while the command still runs calls `abort`
// (the wrapper stops its servers at once) and exits. If the wrapper dies without stopping them
// (SIGKILL, a crash), the pipes to their watchdogs close with it and the watchdogs stop them.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/**
 * @param {string[]} argv the command and its arguments
 * @param {Record<string, string>} env
 * @param {(message: string) => void} say
 * @param {(pid: number) => void} [onSpawn]
 * @param {() => Promise<void>} [abort] stops the wrapper's servers (on a second signal)
 * @returns {Promise<number>}
 */
export function runCommand([command, ...args], env, say, onSpawn, abort) {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (child.pid && onSpawn) onSpawn(child.pid);
  let signalled = false;
  let aborting = false;
  const again = (sig) => {
    if (!signalled) {
      signalled = true;
      return false;
    }
    if (!abort || aborting) return true;
    aborting = true;
    say(`${sig} again while the command runs: stopping its servers now`);
    void abort().finally(() => process.exit(128 + (constants.signals[sig] ?? 0)));
    return true;
  };
  process.on('SIGINT', () => {
    // The terminal sent it to the command too: wait for the command (a second one: abort).
    again('SIGINT');
  });
  for (const sig of ['SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (again(sig)) return;
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    });
  }
  return new Promise((resolve) => {
    child.once('error', (error) => {
      say(`could not run ${command}: ${error.message}`);
      resolve(127);
    });
    child.once('exit', (code, signal) => resolve(code ?? 128 + (constants.signals[signal] ?? 0)));
  });
}
