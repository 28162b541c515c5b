import { Redis } from 'ioredis';

/**
 * Every Redis connection Tasker opens. `blocking`: for BullMQ workers and subscribers, which must
 * wait through outages (maxRetriesPerRequest: null). `command`: for request paths, which must fail
 * fast instead of hanging while Redis is away. A `rediss://` URL is TLS: the server's certificate
 * must be signed by `ca` (REDIS_CA_FILE's PEM) or, without it, by a CA this machine trusts, and
 * name the URL's host.
 */
export function createRedis(
  url: string,
  kind: 'blocking' | 'command',
  name = 'tasker',
  { autoPipelining = false, ca }: { autoPipelining?: boolean; ca?: string | undefined } = {},
): Redis {
  const redis = new Redis(url, {
    // ioredis turns TLS on for rediss:// by itself, with Node's CAs; a CA of one's own goes here
    // (config.ts allows REDIS_CA_FILE only with a rediss:// URL).
    ...(ca ? { tls: { ca } } : {}),
    // Commands issued in the same tick leave in one write: fewer syscalls when many tasks finish at once.
    enableAutoPipelining: autoPipelining,
    connectionName: name,
    maxRetriesPerRequest: kind === 'blocking' ? null : 1,
    enableOfflineQueue: kind === 'blocking',
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  // Connection errors are retried by ioredis and surface in the commands that fail; callers that
  // want them logged add their own listener. Without any listener ioredis prints each one.
  redis.on('error', () => {});
  return redis;
}

/** What ioredis (and the queue's fail-fast check) say when Redis cannot take a command. */
const REDIS_DOWN =
  /Stream isn't writeable|Connection is closed|Redis is not connected|Reached the max retries per request/;

/** Redis is down or the connection broke (the error, or one of its causes, says so). */
export function isRedisUnavailable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && typeof cause === 'object' && depth < 6; depth++) {
    const { message } = cause as { message?: unknown };
    if (typeof message === 'string' && REDIS_DOWN.test(message)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
