// redis-server processes of the tests' own: a plain one (startRedisServer, for tests that restart
// Redis) and the nodes of a cluster (redis-cluster.ts) start the same way, under the watchdog shell
// (watchdog.ts), so that none outlives the process that started it.
//
// scripts/with-redis-cluster.mjs imports this file through redis-cluster.ts as it is (node strips
// the types): no syntax that type stripping cannot erase, and relative imports with .ts.
import { freePort } from './processes.ts';
import { spawnWatched, type Watched } from './watchdog.ts';

/** How long a redis-server may take to say it accepts connections (a busy machine: seconds). */
const READY_MS = 15_000;

/** A redis-server that did not start; its output says why (a port taken: "Address already in use"). */
export class RedisStartError extends Error {}

export interface LaunchOptions {
  /** What the errors call it (`redis-server :6379`). */
  what: string;
  /** A folder the watchdog deletes if this process is gone without stopping it (a cluster node's). */
  removes?: string;
  /** Each chunk of its output. */
  onOutput?: (text: string) => void;
}

/**
 * Starts `redis-server args` under the watchdog (killed with SIGKILL when the pipe closes: nothing
 * to flush that an append-only file with `appendfsync always` has not written) and resolves once it
 * logs "Ready to accept connections". Rejects with RedisStartError, its output included, when it
 * exits before or has not said so after 15 s (it is then stopped).
 */
export async function launchRedis(args: string[], options: LaunchOptions): Promise<Watched> {
  let seen = '';
  let onReady: (() => void) | undefined;
  const watched = spawnWatched('redis-server', args, {
    signal: 'SIGKILL',
    ...(options.removes ? { removes: options.removes } : {}),
    onOutput: (text) => {
      seen += text;
      options.onOutput?.(text);
      if (seen.includes('Ready to accept connections')) onReady?.();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve;
      timer = setTimeout(
        () => reject(new RedisStartError(`${options.what} did not start within ${READY_MS} ms:\n${seen}`)),
        READY_MS,
      );
      void watched.exited.then((code) =>
        reject(new RedisStartError(`${options.what} exited (${code}) before it was ready:\n${seen}`)),
      );
    });
  } catch (error) {
    // The folder stays: a node's restart needs it, and the cluster's stop deletes it.
    watched.kill('SIGKILL');
    await watched.exited;
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return watched;
}

/**
 * Picks ports with `ports` (from the OS: freePort) and launches a redis-server on them with
 * `args(ports)`, up to `attempts` times: another process may take a port between freePort and
 * redis' bind (the ephemeral ports of outgoing connections come from the same range).
 */
export async function launchOnFreePorts<P>(
  ports: () => Promise<P>,
  launch: (ports: P) => Promise<Watched>,
  attempts = 4,
): Promise<{ ports: P; watched: Watched }> {
  for (let attempt = 1; ; attempt++) {
    const picked = await ports();
    try {
      return { ports: picked, watched: await launch(picked) };
    } catch (error) {
      if (!(error instanceof RedisStartError) || attempt >= attempts) throw error;
    }
  }
}

export interface RedisServer {
  url: string;
  port: number;
  /** Kills it (SIGKILL): everything it held is gone, as this machine's Redis keeps nothing on disk. */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/** A private redis-server on a free port, for tests that restart Redis. */
export async function startRedisServer(): Promise<RedisServer> {
  const launch = (port: number) =>
    launchRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      what: `redis-server :${port}`,
    });
  const first = await launchOnFreePorts(freePort, launch);
  const port = first.ports;
  let watched = first.watched;
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    start: async () => {
      watched = await launch(port);
    },
    kill: async () => {
      watched.kill('SIGKILL');
      await watched.exited;
    },
  };
}
