import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bounded, teardownLog } from './teardown.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * V8's heap as `pnpm start` (scripts/start.mjs) sizes it for a server or a worker (README, "Memory"):
 * a young generation of 16 MB a semi-space, and an old generation capped at 768 MB, below Node's
 * default on a large machine (4 GB on 24 GB), which also makes V8 let it grow to about twice what is
 * live between full collections instead of four times.
 */
const NODE_MEMORY_FLAGS = ['--max-semi-space-size=16', '--max-old-space-size=768'];

export interface AppProcess {
  child: ChildProcess;
  /** Everything it printed (stdout + stderr). */
  output(): string;
  /** For a server: its base URL, read from its "listening" log line. */
  url?: string;
  /**
   * Sends a signal and waits for the exit. A process still running `graceMs` after it (default 20 s:
   * the apps' own shutdown bound, SHUTDOWN_TIMEOUT_MS, is 10 s) is reported with the end of its
   * output and SIGKILLed, so that a teardown never hangs on it.
   */
  stop(signal?: NodeJS.Signals, options?: { graceMs?: number }): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Starts the built `apps/<kind>/dist/main.js` as a real process with these variables and waits
 * until it says it is ready. `logLevel` must let `info` through (info, debug or trace). `script`:
 * another entry that starts the same app (a test's own worker with task types of its own, run
 * from source with `nodeArgs: ['--import', 'tsx']`).
 */
export async function spawnApp(
  kind: 'server' | 'worker',
  vars: Record<string, string>,
  {
    timeoutMs = 20_000,
    nodeArgs = [] as string[],
    logLevel = 'info',
    script = path.join(root, 'apps', kind, 'dist', 'main.js'),
  } = {},
): Promise<AppProcess> {
  const child = spawn(process.execPath, [...NODE_MEMORY_FLAGS, ...nodeArgs, script], {
    env: { ...process.env, ...vars, LOG_LEVEL: logLevel },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<string | undefined>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${kind} not ready after ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match =
        kind === 'server'
          ? /"url":"(http:[^"]+)","msg":"server listening"/.exec(output)
          : /worker ready/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(kind === 'server' ? match[1] : undefined);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${kind} exited with ${code} before it was ready:\n${output}`));
    });
  });
  const url = await ready.catch((error: unknown) => {
    child.kill('SIGKILL'); // never leave a half-started process behind
    throw error;
  });
  return {
    child,
    output: () => output,
    url,
    exited,
    stop: async (signal = 'SIGTERM', { graceMs = 20_000 } = {}) => {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      if (signal === 'SIGKILL') return exited;
      const inTime = await bounded(
        `${kind} (pid ${child.pid}) exiting after ${signal}`,
        graceMs,
        () => exited,
      );
      if (!inTime) {
        teardownLog(
          `${kind} did not exit; SIGKILL. Its last output:\n${output.split('\n').slice(-20).join('\n')}`,
        );
        child.kill('SIGKILL');
      }
      return exited;
    },
  };
}
