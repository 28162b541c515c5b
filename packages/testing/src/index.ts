export { type Balancer, startBalancer } from './balancer.ts';
export {
  createTestEnv,
  DROP_DATABASE_BOUND_MS,
  deleteKeys,
  dropDatabase,
  onRedis,
  pgbouncerUrl,
  redisClusterNodes,
  type TestEnv,
  testMode,
} from './env.ts';
export {
  type FakeFailure,
  type FakeOpenAI,
  type FakeOpenAIOptions,
  type RecordedRequest,
  startFakeOpenAI,
} from './fake-openai.ts';
export { findPgBouncer, type PgBouncer, type PgBouncerOptions, startPgBouncer } from './pgbouncer.ts';
export { type AppProcess, freePort, spawnApp } from './processes.ts';
export {
  deleteClusterKeys,
  hasRedisClusterTools,
  type RedisCluster,
  type RedisClusterNode,
  type RedisClusterOptions,
  startRedisCluster,
} from './redis-cluster.ts';
export { type RedisServer, startRedisServer } from './redis-server.ts';
export { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
export { bounded, SLOW_MS, teardownLog } from './teardown.ts';
export { waitFor } from './wait.ts';
