// A Redis Cluster of three masters on loopback, as the tests of REDIS_CLUSTER_NODES need one (issue
// 24): Debian's `redis-server` with `cluster-enabled yes`, joined by `redis-cli --cluster create`.
//
// No replicas: a master that stops takes its slots with it until it is back. Each keeps an
// append-only file written with `appendfsync always` (on /dev/shm when there is one: tmpfs, so the
// fsync costs nothing and the file survives the process, not the machine), so that a master killed
// and started again on the same port and folder comes back with every write it acknowledged and
// its place in the cluster (nodes.conf).
//
// Nodes, and the folder of them all, never outlive the process that started them (watchdog.ts): a
// test runner's worker or scripts/with-redis-cluster.mjs SIGKILLed leaves nothing behind.
//
// scripts/with-redis-cluster.mjs imports this file as it is (node strips the types): no syntax that
// type stripping cannot erase, and relative imports with their .ts extension.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { freePort } from './processes.ts';
import { launchOnFreePorts, launchRedis } from './redis-server.ts';
import { waitFor } from './wait.ts';
import { spawnWatched, type Watched } from './watchdog.ts';

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

/** A node's client (or TLS) port and its cluster bus port (`cluster-port`), both from the OS. */
interface NodePorts {
  port: number;
  busPort: number;
}

/** Two free loopback ports, none of them in `taken` (the other nodes' picks, not yet bound). */
async function freeNodePorts(taken: Set<number>): Promise<NodePorts> {
  const pick = async () => {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  };
  return { port: await pick(), busPort: await pick() };
}

/** A node, and what stop() of the cluster needs: close() kills it and deletes its folder. */
interface Node extends RedisClusterNode {
  close(): Promise<void>;
}

/**
 * Starts a cluster node in `dir` on free ports, again on others if it could not start (a port
 * taken between freePort and its bind). Under the watchdog (watchdog.ts): if this process goes
 * without stopping it, it is killed and `dir` deleted.
 */
async function startNode(
  dir: string,
  nodeTimeoutMs: number,
  access: Access,
  taken: Set<number>,
): Promise<Node> {
  const { password, tls } = access;
  let output = '';
  const launch = ({ port, busPort }: NodePorts) =>
    launchRedis(
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
        // Its bus port from the OS too, not P + 10000 (which may be an ephemeral port in use).
        '--cluster-port',
        String(busPort),
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
      {
        what: `redis-server :${port} (cluster bus :${busPort})`,
        removes: dir,
        onOutput: (text) => {
          output += text;
        },
      },
    );
  const first = await launchOnFreePorts(() => freeNodePorts(taken), launch);
  const { ports } = first;
  let watched: Watched = first.watched;
  return {
    port: ports.port,
    running: () => watched.running(),
    // Same ports as before: the other nodes know it by them (nodes.conf).
    start: async () => {
      watched = await launch(ports);
    },
    output: () => output,
    stop: async (signal = 'SIGKILL') => {
      watched.kill(signal);
      await watched.exited;
    },
    close: () => watched.stop(),
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
 * Starts `masters` redis-servers in cluster mode on loopback ports that the OS gives (client and
 * bus port, `cluster-port`), each under the watchdog (watchdog.ts), joins them with `redis-cli
 * --cluster create` (no replicas) and waits for `cluster_state:ok` on each.
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
  // Deletes `root` if this process goes without stop(): a node stopped by a test at that moment has
  // no watchdog of its own left to delete its folder.
  const janitor = spawnWatched('sleep', ['infinity'], { signal: 'SIGKILL', removes: root });
  const members: Node[] = [];
  const stopAll = async () => {
    await Promise.all(members.map((node) => node.close()));
    await janitor.stop();
    await rm(root, { recursive: true, force: true });
  };
  const waitUntilOk = async (timeoutMs = 20_000) => {
    await waitFor(
      async () => {
        const states = await Promise.all(
          members.filter((n) => n.running()).map((n) => clusterState(n.port, access)),
        );
        if (states.every((state) => state === 'ok')) return true;
        throw new Error(states.join(', '));
      },
      { timeoutMs, intervalMs: 100, what: 'cluster_state:ok on every running master' },
    );
  };
  try {
    const taken = new Set<number>();
    const dirs = Array.from({ length: masters }, (_, i) => path.join(root, `node-${i + 1}`));
    await Promise.all(dirs.map((dir) => mkdir(dir)));
    // Every start settled before a failure is thrown: the nodes that run are then stopped with it.
    const started = await Promise.allSettled(dirs.map((dir) => startNode(dir, nodeTimeoutMs, access, taken)));
    for (const result of started) if (result.status === 'fulfilled') members.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
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

/** CRC16 (XMODEM), as Redis Cluster computes a key's slot with it. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/**
 * The slot of every key that starts with `prefix:` when `prefix` begins with a hash tag (`{tag}`,
 * the tag not empty: only the tag is hashed); undefined when such keys may be in any slot.
 */
export function prefixSlot(prefix: string): number | undefined {
  if (!prefix.startsWith('{')) return undefined;
  const end = prefix.indexOf('}');
  if (end <= 1) return undefined;
  return crc16(prefix.slice(1, end)) % 16384;
}

/** `text` as a literal in a SCAN MATCH pattern (Redis' glob: `*`, `?`, `[`, `]` and `\\` escaped). */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key that starts with `prefix:` in the cluster whose nodes are `nodes` (`host:port,...`).
 * SCAN MATCH runs on masters only (a replica would answer for its master's keys, and refuse UNLINK),
 * and only on the master of the prefix's slot when it begins with a hash tag (`{REDIS_PREFIX}`, as
 * on a cluster Tasker's keys do: they are all in that slot). A master that is down does not stop
 * the others from being cleaned: it is named in the error thrown at the end.
 */
export async function deleteClusterKeys(nodes: string, prefix: string): Promise<void> {
  const startup = nodes.split(',').map((entry) => {
    const at = entry.trim().lastIndexOf(':');
    return { host: entry.trim().slice(0, at), port: Number(entry.trim().slice(at + 1)) };
  });
  const cluster = new Cluster(startup, {
    lazyConnect: true,
    clusterRetryStrategy: () => null,
    // No ready check (CLUSTER INFO on a node): with a master down it can keep connect() waiting,
    // as it kept the engine's clients after a master restart (redis.ts).
    enableReadyCheck: false,
    // A master that is down refuses at once; one that does not answer is given 2 s.
    redisOptions: { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 5000 },
  });
  cluster.on('error', () => {});
  try {
    await cluster.connect();
    const slot = prefixSlot(prefix);
    const owner = slot === undefined ? undefined : cluster.slots[slot]?.[0];
    const masters = cluster
      .nodes('master')
      .filter((node) => owner === undefined || `${node.options.host}:${node.options.port}` === owner);
    const pattern = `${globLiteral(prefix)}:*`;
    const results = await Promise.allSettled(
      masters.map(async (node) => {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          // One UNLINK a key (keys of one UNLINK must share a slot), in one pipeline.
          if (keys.length > 0)
            await keys.reduce((pipeline, key) => pipeline.unlink(key), node.pipeline()).exec();
        } while (cursor !== '0');
      }),
    );
    const failed = results.flatMap((result, i) =>
      result.status === 'rejected'
        ? [`${masters[i]?.options.host}:${masters[i]?.options.port} (${String(result.reason)})`]
        : [],
    );
    if (failed.length > 0) throw new Error(`keys ${pattern} not deleted on ${failed.join(', ')}`);
  } finally {
    cluster.disconnect();
  }
}
