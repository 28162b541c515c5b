import { redactUrl } from '@tasker/db';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { Env } from './config.ts';
import type { RedisClusterNodes } from './redis-nodes.ts';

/** A connection Tasker opens: to one Redis (REDIS_URL) or to a Redis Cluster (REDIS_CLUSTER_NODES). */
export type RedisClient = Redis | Cluster;

/** Where Redis is: REDIS_URL's URL, or a cluster's nodes. */
export type RedisTarget = string | RedisClusterNodes;

/** Where this configuration's Redis is; undefined in the PostgreSQL-only mode. */
export function redisTarget(env: Pick<Env, 'REDIS_URL' | 'REDIS_CLUSTER_NODES'>): RedisTarget | undefined {
  return env.REDIS_CLUSTER_NODES ?? env.REDIS_URL;
}

/** Where Redis is, for log lines: the URL without its password, or the cluster's nodes. */
export function describeRedisTarget(target: RedisTarget): string {
  if (typeof target !== 'string') {
    const scheme = target.tls ? 'rediss://' : '';
    return `Redis Cluster at ${target.nodes.map((node) => `${scheme}${node.host}:${node.port}`).join(',')}`;
  }
  return `Redis at ${redactUrl(target)}`;
}

/**
 * Every Redis connection Tasker opens. `blocking`: for BullMQ workers and subscribers, which must
 * wait through outages (maxRetriesPerRequest: null). `command`: for request paths, which must fail
 * fast instead of hanging while Redis is away. A `rediss://` URL is TLS: the server's certificate
 * must be signed by `ca` (REDIS_CA_FILE's PEM) or, without it, by a CA this machine trusts, and
 * name the URL's host. On a cluster (`target` is REDIS_CLUSTER_NODES's), an ioredis `Cluster`
 * with the same options on each node's connection; `rediss://` nodes' certificates must name the
 * address the cluster announces for them.
 */
export function createRedis(
  target: string,
  kind: 'blocking' | 'command',
  name?: string,
  options?: { autoPipelining?: boolean; ca?: string | undefined },
): Redis;
export function createRedis(
  target: RedisTarget,
  kind: 'blocking' | 'command',
  name?: string,
  options?: { autoPipelining?: boolean; ca?: string | undefined },
): RedisClient;
export function createRedis(
  target: RedisTarget,
  kind: 'blocking' | 'command',
  name = 'tasker',
  { autoPipelining = false, ca }: { autoPipelining?: boolean; ca?: string | undefined } = {},
): RedisClient {
  const options = {
    connectionName: name,
    maxRetriesPerRequest: kind === 'blocking' ? null : 1,
    enableOfflineQueue: kind === 'blocking',
    connectTimeout: 5000,
  } satisfies RedisOptions;
  // Connection errors are retried by ioredis and surface in the commands that fail; callers that
  // want them logged add their own listener. Without any listener ioredis prints each one.
  const quiet = <T extends RedisClient>(client: T): T => {
    client.on('error', () => {});
    return client;
  };
  if (typeof target === 'string') {
    return quiet(
      new Redis(target, {
        ...options,
        // ioredis turns TLS on for rediss:// by itself, with Node's CAs; a CA of one's own goes here
        // (config.ts allows REDIS_CA_FILE only with a rediss:// URL or cluster).
        ...(ca ? { tls: { ca } } : {}),
        // Commands issued in the same tick leave in one write: fewer syscalls when many tasks finish at once.
        enableAutoPipelining: autoPipelining,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      }),
    );
  }
  const cluster: ClusterOptions = {
    // Every node's connection (ioredis itself decides their reconnection: none; a node that left is
    // found again through MOVED and CLUSTER SLOTS).
    redisOptions: {
      ...options,
      ...(target.tls ? { tls: ca ? { ca } : {} } : {}),
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
    },
    enableOfflineQueue: kind === 'blocking',
    enableAutoPipelining: autoPipelining,
    // No CLUSTER INFO check before 'ready': when it fails (cluster_state:fail, while a master is
    // away longer than cluster-node-timeout), ioredis reconnects, and the promise of the connect()
    // that made that attempt never settles; BullMQ awaits it to reconnect a worker's blocking
    // connection, whose worker then takes no job again. Commands meanwhile get CLUSTERDOWN, and
    // are tried again (retryDelayOnClusterDown).
    enableReadyCheck: false,
    // CLUSTER SLOTS may take over ioredis's 1 s on a busy machine: the start failed ("None of
    // startup nodes is available") and was tried again.
    slotsRefreshTimeout: 3000,
    clusterRetryStrategy: (times) => Math.min(times * 200, 2000),
    // A master that is away (restarting, or until its replica takes over): a command is tried
    // again every 200 ms, at most maxRedirections times (a MOVED back to it counts too). A
    // worker's commands wait up to about 10 s for it; a request's give up within about 1.5 s (its
    // answer is a 503, as with one Redis down).
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: kind === 'blocking' ? 64 : 8,
  };
  const client = new Cluster(target.nodes, cluster);
  // BullMQ duplicates a worker's connection for its blocking BZPOPMIN, and when one outlives its
  // watchdog it disconnects that duplicate and waits for its 'end'. A command then waiting in
  // ioredis's delay queue (a retry after "Connection is closed" or CLUSTERDOWN) is sent again once
  // the disconnect has begun and opens a node connection anew: the node pool never drains, 'end'
  // never comes, and the worker takes no job again (seen when a master restarts under load). So a
  // duplicate's commands are not retried after a delay: they fail at once, and BullMQ's loop tries
  // again itself.
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (nodes, options) =>
    quiet(
      duplicate(nodes, {
        ...options,
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
      }),
    );
  return quiet(client);
}

/**
 * Why a cluster's nodes do not answer, in the words of a node: ioredis's `Cluster` only says that
 * none did ("Connection is closed.", "Failed to refresh slots cache"), since it asks for the slots
 * on a connection whose own errors it drops. One plain connection to each startup node in turn,
 * with the cluster's options; the first refusal (a certificate, a password) or failure is the
 * answer; undefined when one answers PING.
 */
export async function probeClusterNodes(target: RedisClusterNodes, ca?: string): Promise<string | undefined> {
  let reason: string | undefined;
  for (const node of target.nodes) {
    const redis = new Redis({
      ...node,
      ...(target.tls ? { tls: ca ? { ca } : {} } : {}),
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
      lazyConnect: true,
      connectTimeout: 2000,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    let failure: string | undefined;
    redis.on('error', (error: Error) => {
      failure ??= error.message;
    });
    try {
      await redis.connect();
      await redis.ping();
      return undefined;
    } catch (error) {
      reason ??= failure ?? (error as Error).message;
    } finally {
      redis.disconnect();
    }
  }
  return reason;
}

/** The masters of a cluster (each holds its own slots: SCAN it on each); one Redis: itself. */
export function redisMasters(client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/** What ioredis (and the queue's fail-fast check) say when Redis, or a cluster's master, cannot take a command. */
const REDIS_DOWN =
  /Stream isn't writeable|Connection is closed|Redis is not connected|Reached the max retries per request|Too many Cluster redirections|Cluster isn't ready|Cluster is ended|None of startup nodes is available|^CLUSTERDOWN/;

/** Redis is down or the connection broke (the error, or one of its causes, says so). */
export function isRedisUnavailable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && typeof cause === 'object' && depth < 6; depth++) {
    const { message } = cause as { message?: unknown };
    if (typeof message === 'string' && REDIS_DOWN.test(message)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
