import { Redis } from 'ioredis';

/**
 * `blocking`: for BullMQ workers and subscribers, which must wait through outages
 * (maxRetriesPerRequest: null). `command`: for request paths, which must fail fast instead of
 * hanging while Redis is away.
 */
export function createRedis(url: string, kind: 'blocking' | 'command', name = 'tasker'): Redis {
  return new Redis(url, {
    connectionName: name,
    maxRetriesPerRequest: kind === 'blocking' ? null : 1,
    enableOfflineQueue: kind === 'blocking',
    connectTimeout: 5000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}
