// Runs the command that scripts/with-*.mjs wrap, with `env` added to this process's environment,
// and resolves with its exit code (128 + the signal number if a signal ended it; 127 if it could not
// start). The command stays in this process group (a terminal's Ctrl-C reaches it directly, so
// SIGINT here only waits for it); SIGTERM and SIGHUP sent to the wrapper alone are passed on.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/**
 * @param {string[]} argv the command and its arguments
 * @param {Record<string, string>} env
 * @param {(message: string) => void} say
 * @param {(pid: number) => void} [onSpawn]
 * @returns {Promise<number>}
 */
export function runCommand([command, ...args], env, say, onSpawn) {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (child.pid && onSpawn) onSpawn(child.pid);
  process.on('SIGINT', () => {
    // The terminal sent it to the command too: wait for the command.
  });
  for (const sig of ['SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
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
