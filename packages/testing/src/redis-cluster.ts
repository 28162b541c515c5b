// A Redis Cluster of three masters on loopback, as the tests of REDIS_CLUSTER_NODES need one (issue
// 24): Debian's `redis-server` with `cluster-enabled yes`, joined by `redis-cli --cluster create`.
//
// No replicas: a master that stops takes its slots with it until it is back. Each keeps an
// append-only file written with `appendfsync always` (on /dev/shm when there is one: tmpfs, so the
// fsync costs nothing and the file survives the process, not the machine), so that a master killed
// and started again on the same port and folder comes back with every write it acknowledged and
// its place in the cluster (nodes.conf).
//
// scripts/with-redis-cluster.mjs imports this file as it is (node strips the types): no syntax that
// type stripping cannot erase, and relative imports with their .ts extension.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis, type RedisOptions } from 'ioredis';

const run = promisify(execFile);

/** Whether `redis-server` and `redis-cli` are on PATH (Debian's `redis-server` package has both). */
export function hasRedisClusterTools(): boolean {
  const dirs = (process.env.PATH ?? '').split(path.delimiter);
  return ['redis-server', 'redis-cli'].every((bin) => dirs.some((dir) => existsSync(path.join(dir, bin))));
}

export interface RedisClusterOptions {
  /** Masters (at least 3, as redis-cli asks). Default 3. */
  masters?: number;
  /** `cluster-node-timeout`: how long a master may be silent before the others mark it failed. Default 5000. */
  nodeTimeoutMs?: number;
  /** `requirepass` (and `masterauth`) of every node: clients must AUTH with it. Default: none. */
  password?: string;
  /**
   * TLS only, clients and cluster bus alike (`tls-port`, `tls-cluster yes`; clients need no
   * certificate): the nodes' certificate and key, and the CA that signed it (PEM files). The
   * certificate must name 127.0.0.1, the address the nodes announce. `nodes` is then rediss:// URLs.
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

/** How a client reaches the nodes: their password and TLS, as startRedisCluster was given them. */
interface Access {
  password?: string | undefined;
  tls?: RedisClusterOptions['tls'];
}

/** ioredis's options for `access`. */
async function clientOptions(access: Access): Promise<RedisOptions> {
  return {
    ...(access.password ? { password: access.password } : {}),
    ...(access.tls ? { tls: { ca: await readFile(access.tls.caFile, 'utf8') } } : {}),
  };
}

export interface RedisClusterNode {
  port: number;
  /** Whether its process runs. */
  running(): boolean;
  /** Stops it: SIGKILL (default; its append-only file holds every acknowledged write) or SIGTERM. */
  stop(signal?: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts it again on the same port and folder: it reloads its data and rejoins with its slots. */
  start(): Promise<void>;
  /** Everything it logged. */
  output(): string;
}

export interface RedisCluster {
  /** `127.0.0.1:P1,127.0.0.1:P2,...` (with TLS, `rediss://` URLs): REDIS_CLUSTER_NODES's value. */
  nodes: string;
  members: RedisClusterNode[];
  /** The master that holds `key`'s slot (a hash tag `{...}` decides it, as in the cluster). */
  masterOf(key: string): Promise<RedisClusterNode>;
  /** Resolves when every running master says `cluster_state:ok`. */
  waitUntilOk(timeoutMs?: number): Promise<void>;
  /** Kills every node and deletes their folders. */
  stop(): Promise<void>;
}

/** A free loopback port P whose cluster bus port P + 10000 is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  const listen = async (port: number) => {
    const server = createServer();
    server.listen(port, '127.0.0.1');
    try {
      await once(server, 'listening');
      return true;
    } catch {
      return false;
    } finally {
      server.close();
    }
  };
  for (let tries = 0; tries < 200; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await listen(port)) && (await listen(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free pair of loopback ports (P, P + 10000) for a cluster node');
}

function startNode(port: number, dir: string, nodeTimeoutMs: number, access: Access): RedisClusterNode {
  const { password, tls } = access;
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    const proc = spawn(
      'redis-server',
      [
        ...(tls
          ? ['--port', '0', '--tls-port', String(port), '--tls-cluster', 'yes', '--tls-auth-clients', 'no']
          : ['--port', String(port)]),
        ...(tls
          ? ['--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile]
          : []),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        ...(password ? ['--requirepass', password, '--masterauth', password] : []),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(
        () => reject(new Error(`redis-server :${port} did not start:\n${seen}`)),
        15_000,
      );
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        seen += text;
        output += text;
        if (seen.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server :${port} exited (${code ?? signal}) before it was ready:\n${seen}`));
      });
    });
    // Keep reading its output after start, or a full pipe would block it.
  };
  return {
    port,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    start,
    output: () => output,
    stop: async (signal = 'SIGKILL') => {
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      await exited;
    },
  };
}

async function clusterState(port: number, access: Access): Promise<string> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    ...(await clientOptions(access)),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const info = String(await redis.call('CLUSTER', 'INFO'));
    return /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
}

/**
 * Starts `masters` redis-servers in cluster mode on free loopback ports (each P with its bus port
 * P + 10000 free), joins them with `redis-cli --cluster create` (no replicas) and waits for
 * `cluster_state:ok` on each.
 */
export async function startRedisCluster({
  masters = 3,
  nodeTimeoutMs = 5000,
  password,
  tls,
}: RedisClusterOptions = {}): Promise<RedisCluster> {
  const access: Access = { password, tls };
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const root = await mkdtemp(path.join(base, 'tasker-redis-cluster-'));
  const members: RedisClusterNode[] = [];
  const stopAll = async () => {
    await Promise.all(members.map((node) => node.stop('SIGKILL')));
    await rm(root, { recursive: true, force: true });
  };
  const waitUntilOk = async (timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        members.filter((n) => n.running()).map((n) => clusterState(n.port, access)),
      );
      if (states.every((state) => state === 'ok')) return;
      if (Date.now() > deadline)
        throw new Error(`cluster not ok after ${timeoutMs} ms: ${states.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  try {
    const taken = new Set<number>();
    for (let i = 0; i < masters; i++) {
      const port = await freeClusterPort(taken);
      const dir = path.join(root, String(port));
      await mkdir(dir);
      members.push(startNode(port, dir, nodeTimeoutMs, access));
    }
    await Promise.all(members.map((node) => node.start()));
    const addresses = members.map((node) => `127.0.0.1:${node.port}`);
    await run(
      'redis-cli',
      [
        ...(password ? ['-a', password, '--no-auth-warning'] : []),
        ...(tls ? ['--tls', '--cacert', tls.caFile] : []),
        ...['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
      ],
      {
        timeout: 30_000,
      },
    );
    await waitUntilOk();
    return {
      nodes: addresses.map((address) => (tls ? `rediss://${address}` : address)).join(','),
      members,
      waitUntilOk,
      masterOf: async (key) => {
        const [first] = members.filter((n) => n.running());
        if (!first) throw new Error('no node of the cluster runs');
        const cluster = new Cluster([{ host: '127.0.0.1', port: first.port }], {
          lazyConnect: true,
          redisOptions: await clientOptions(access),
        });
        cluster.on('error', () => {});
        try {
          await cluster.connect();
          const slot = Number(await cluster.call('CLUSTER', 'KEYSLOT', key));
          const ranges = (await cluster.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
          const owner = ranges.find(([from, to]) => slot >= from && slot <= to);
          const node = members.find((n) => n.port === owner?.[2][1]);
          if (!node) throw new Error(`no master of slot ${slot} (key ${key})`);
          return node;
        } finally {
          cluster.disconnect();
        }
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/**
 * Deletes every key that starts with `prefix:` on every master of the cluster whose nodes are
 * `nodes` (`host:port,...`): SCAN runs per node, each holds only its own slots.
 */
export async function deleteClusterKeys(nodes: string, prefix: string): Promise<void> {
  const startup = nodes.split(',').map((entry) => {
    const at = entry.trim().lastIndexOf(':');
    return { host: entry.trim().slice(0, at), port: Number(entry.trim().slice(at + 1)) };
  });
  const cluster = new Cluster(startup, {
    lazyConnect: true,
    clusterRetryStrategy: () => null,
    redisOptions: { maxRetriesPerRequest: 1 },
  });
  cluster.on('error', () => {});
  try {
    await cluster.connect();
    for (const node of cluster.nodes('master')) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        // One UNLINK a key (several keys in one must share a slot), in one pipeline.
        if (keys.length > 0)
          await keys.reduce((pipeline, key) => pipeline.unlink(key), node.pipeline()).exec();
      } while (cursor !== '0');
    }
  } finally {
    cluster.disconnect();
  }
}
