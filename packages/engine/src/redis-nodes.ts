// REDIS_CLUSTER_NODES as read by the configuration: plain parsing, apart from redis.ts so that
// loading the configuration (the CLI does at every command) does not load ioredis.

/**
 * REDIS_CLUSTER_NODES as Tasker reads it: the nodes it starts from (the client then learns every
 * master from CLUSTER SLOTS), and what every node shares: TLS (`rediss://`) and the credentials.
 */
export interface RedisClusterNodes {
  nodes: { host: string; port: number }[];
  tls: boolean;
  username?: string | undefined;
  password?: string | undefined;
}

export class RedisClusterNodesError extends Error {
  override name = 'RedisClusterNodesError';
}

/**
 * `host:port,host:port,...`, or the same nodes as `redis://` or `rediss://` URLs, which may carry
 * `user:password@` (AUTH on every node). Every entry says the same scheme and credentials: a
 * cluster's nodes share them. No DB index: a cluster has only database 0.
 */
export function parseClusterNodes(text: string): RedisClusterNodes {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new RedisClusterNodesError('lists no node (host:port,host:port,...)');
  const parsed = entries.map((entry) => {
    let url: URL;
    try {
      url = new URL(/^[a-z]+:\/\//i.test(entry) ? entry : `redis://${entry}`);
    } catch {
      throw new RedisClusterNodesError(`"${entry}": not host:port (or a redis:// URL)`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
      throw new RedisClusterNodesError(`"${entry}": must be host:port, or a redis:// or rediss:// URL`);
    if (!url.hostname || !url.port) throw new RedisClusterNodesError(`"${entry}": names no port (host:port)`);
    if ((url.pathname && url.pathname !== '/') || url.search)
      throw new RedisClusterNodesError(`"${entry}": no DB index or options (a cluster has only database 0)`);
    return {
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port),
      tls: url.protocol === 'rediss:',
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
    };
  });
  const [first] = parsed as [(typeof parsed)[number], ...typeof parsed];
  const shared = (node: (typeof parsed)[number]) => `${node.tls}\n${node.username}\n${node.password}`;
  if (parsed.some((node) => shared(node) !== shared(first)))
    throw new RedisClusterNodesError(
      'every node must be given the same way: all host:port, all redis:// or all rediss://, with the same user:password (or none)',
    );
  return {
    nodes: parsed.map(({ host, port }) => ({ host, port })),
    tls: first.tls,
    username: first.username,
    password: first.password,
  };
}
