/**
 * REDIS_CLUSTER_NODES (issue 24): how it is read, and createRedis on a cluster that asks for a
 * password (three masters of the test's own, @tasker/testing's startRedisCluster). Tasker's run on
 * a cluster is apps/server's cluster.test; `pnpm test:cluster` runs whole suites on one.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hasRedisClusterTools, onRedis, type RedisCluster, startRedisCluster } from '@tasker/testing';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  createRedis,
  describeRedisTarget,
  isRedisUnavailable,
  loadEnv,
  parseClusterNodes,
  probeClusterNodes,
  type RedisClient,
  redisKeyPrefix,
  redisKeys,
  redisMasters,
  redisTarget,
} from '../src/index.ts';

const base = { DATABASE_URL: 'postgres://h/db' };

describe('REDIS_CLUSTER_NODES', () => {
  it('takes host:port pairs, or redis:// and rediss:// URLs with credentials shared by every node', () => {
    const env = loadEnv({ ...base, REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002' });
    expect(env.REDIS_CLUSTER_NODES).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
      username: undefined,
      password: undefined,
    });
    expect(redisTarget(env)).toBe(env.REDIS_CLUSTER_NODES);
    expect(parseClusterNodes('rediss://app:s%40cret@a:7000,rediss://app:s%40cret@b:7000/')).toEqual({
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7000 },
      ],
      tls: true,
      username: 'app',
      password: 's@cret',
    });
    // Empty: unset (the PostgreSQL-only mode, or REDIS_URL's Redis).
    expect(loadEnv({ ...base, REDIS_CLUSTER_NODES: '' }).REDIS_CLUSTER_NODES).toBeUndefined();
    expect(redisTarget(loadEnv({ ...base, REDIS_URL: 'redis://h:6379/2' }))).toBe('redis://h:6379/2');
  });

  it('refuses what a cluster cannot be, naming the variable and the entry', () => {
    const fails = (value: string) => () => loadEnv({ ...base, REDIS_CLUSTER_NODES: value });
    expect(fails('a:7000,b')).toThrow(/REDIS_CLUSTER_NODES: "b": names no port/);
    expect(fails('redis://a:7000/1')).toThrow(/"redis:\/\/a:7000\/1": no DB index or options/);
    expect(fails('http://a:7000')).toThrow(/must be host:port, or a redis:\/\/ or rediss:\/\/ URL/);
    expect(fails(' , ')).toThrow(/REDIS_CLUSTER_NODES: lists no node/);
    expect(fails('rediss://a:7000,b:7000')).toThrow(/every node must be given the same way/);
    expect(fails('redis://:x@a:7000,redis://:y@b:7000')).toThrow(/every node must be given the same way/);
  });

  it('is one or the other with REDIS_URL; REDIS_CA_FILE only with rediss:// nodes', () => {
    expect(() => loadEnv({ ...base, REDIS_URL: 'redis://h:6379', REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
      ConfigError,
    );
    expect(() => loadEnv({ ...base, REDIS_URL: 'redis://h:6379', REDIS_CLUSTER_NODES: 'a:7000' })).toThrow(
      /REDIS_CLUSTER_NODES: set together with REDIS_URL: set one of them/,
    );
    // Read as a CA file (it only has to hold a PEM certificate's header to be taken).
    const dir = mkdtempSync(path.join(tmpdir(), 'tasker-ca-'));
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(
      loadEnv({ ...base, REDIS_CLUSTER_NODES: 'rediss://a:7000', REDIS_CA_FILE: ca }).REDIS_CA_FILE,
    ).toContain('BEGIN CERTIFICATE');
    expect(() => loadEnv({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_CA_FILE: ca })).toThrow(
      /REDIS_CA_FILE: set, but .* the CA would not be used/,
    );
    rmSync(dir, { recursive: true });
  });

  it('puts every key under the hash tag {REDIS_PREFIX} on a cluster, and only there', () => {
    const cluster = loadEnv({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_PREFIX: 'acme' });
    expect(redisKeyPrefix(cluster)).toBe('{acme}');
    const keys = redisKeys(redisKeyPrefix(cluster));
    expect([keys.bullmq('wait'), keys.cancelChannel, keys.result('t'), keys.sweeperLock]).toEqual([
      '{acme}:tasks:wait',
      '{acme}:cancel',
      '{acme}:result:t',
      '{acme}:sweeper-lock',
    ]);
    expect(redisKeyPrefix(loadEnv({ ...base, REDIS_URL: 'redis://h', REDIS_PREFIX: 'acme' }))).toBe('acme');
  });

  it('says where Redis is without a password', () => {
    expect(describeRedisTarget(parseClusterNodes('rediss://u:pw@a:7000,rediss://u:pw@b:7001'))).toBe(
      'Redis Cluster at rediss://a:7000,rediss://b:7001',
    );
    expect(describeRedisTarget('redis://:pw@h:6379/0')).toBe('Redis at redis://:***@h:6379/0');
  });

  it("takes a cluster's refusals for Redis being unavailable (503), as one Redis down", () => {
    for (const message of [
      'Too many Cluster redirections. Last error: Error: Connection is closed.',
      "Cluster isn't ready and enableOfflineQueue options is false",
      'CLUSTERDOWN The cluster is down',
      'None of startup nodes is available',
    ])
      expect(isRedisUnavailable(new Error('enqueue failed', { cause: new Error(message) }))).toBe(true);
    expect(isRedisUnavailable(new Error('CROSSSLOT Keys in request do not hash to the same slot'))).toBe(
      false,
    );
  });
});

describe.runIf(onRedis && (hasRedisClusterTools() || Boolean(process.env.CI)))(
  'createRedis on a cluster with a password',
  () => {
    let cluster: RedisCluster;
    const clients: RedisClient[] = [];
    beforeAll(async () => {
      cluster = await startRedisCluster({ password: 'p@ss word' });
    }, 60_000);
    afterAll(async () => {
      for (const client of clients) client.disconnect();
      await cluster?.stop();
    });
    const connect = (nodes: string, kind: 'command' | 'blocking' = 'command') => {
      const client = createRedis(parseClusterNodes(nodes), kind, 'cluster-test');
      clients.push(client);
      return client;
    };
    const urls = (password: string) =>
      cluster.nodes
        .split(',')
        .map((node) => `redis://:${encodeURIComponent(password)}@${node}`)
        .join(',');

    it('reaches every master with user:password@ in the nodes, and a script runs on keys of one tag', async () => {
      const redis = connect(urls('p@ss word'));
      expect(redis).toBeInstanceOf(Cluster);
      await new Promise((resolve) => redis.once('ready', resolve));
      // Keys spread over the three masters (no tag), and two keys of one tag in one script.
      for (let i = 0; i < 30; i++) await redis.set(`spread:${i}`, String(i));
      const holders = await Promise.all(redisMasters(redis).map((node) => node.dbsize()));
      expect(holders.filter((n) => n > 0)).toHaveLength(3);
      await redis.set('{t}:a', '1');
      expect(
        await redis.eval(
          "return redis.call('incr', KEYS[1]) + redis.call('incr', KEYS[2])",
          2,
          '{t}:a',
          '{t}:b',
        ),
      ).toBe(3);
      // The same script on keys of two slots is what a cluster refuses.
      await expect(
        redis.eval("return redis.call('get', KEYS[1])", 2, 'spread:1', 'spread:2'),
      ).rejects.toThrow(/CROSSSLOT/);
    });

    it('publishes to a subscriber of another connection (a PUBLISH reaches every node)', async () => {
      const publisher = connect(urls('p@ss word'));
      const subscriber = connect(urls('p@ss word'), 'blocking');
      const heard: string[] = [];
      subscriber.on('message', (_channel: string, message: string) => heard.push(message));
      await subscriber.subscribe('{t}:cancel');
      for (let i = 0; i < 20 && heard.length === 0; i++) {
        await publisher.publish('{t}:cancel', 'task-1');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(heard).toContain('task-1');
    });

    it("while a master is away, a worker's command waits for it; BullMQ's duplicate (its blocking connection) fails at once", async () => {
      const worker = connect(urls('p@ss word'), 'blocking');
      await new Promise((resolve) => worker.once('ready', resolve));
      const blocking = (worker as Cluster).duplicate();
      clients.push(blocking);
      await worker.set('{away}:k', 'v');
      const owner = await cluster.masterOf('{away}:k');
      await owner.stop('SIGKILL');
      try {
        const started = Date.now();
        const waiting = worker.get('{away}:k');
        const failed = await blocking.get('{away}:k').then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(isRedisUnavailable(failed)).toBe(true);
        expect(Date.now() - started).toBeLessThan(1500);
        const settled = await Promise.race([
          waiting.then(
            () => 'settled',
            () => 'settled',
          ),
          new Promise((resolve) => setTimeout(() => resolve('waiting'), 300)),
        ]);
        expect(settled).toBe('waiting');
        await owner.start();
        expect(await waiting).toBe('v'); // its append-only file kept the key
      } finally {
        if (!owner.running()) await owner.start();
        await cluster.waitUntilOk();
      }
    });

    it('a wrong password: the nodes refuse it, and commands fail as with Redis unreachable (503)', async () => {
      const redis = connect(urls('wrong'));
      const refusal = await new Promise<Error>((resolve) =>
        (redis as Cluster).once('node error', (error: Error) => resolve(error)),
      );
      expect(refusal.message).toMatch(/WRONGPASS/);
      expect(redis.status).not.toBe('ready');
      const error = await redis.get('x').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isRedisUnavailable(error)).toBe(true);
      // What the start's "cannot reach" line then says (the cluster's own errors do not).
      expect(await probeClusterNodes(parseClusterNodes(urls('wrong')))).toMatch(/WRONGPASS/);
      expect(await probeClusterNodes(parseClusterNodes(urls('p@ss word')))).toBeUndefined();
    });
  },
);
