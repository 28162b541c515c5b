import type { Env } from './config.ts';

/** The BullMQ queue every task job goes through. */
export const QUEUE_NAME = 'tasks';

/**
 * Every name Tasker gives to shared state outside its own tables, in one place (as BullMQ's
 * `queue-keys.ts` does for its keys).
 *
 * With Redis, every key and channel starts with `REDIS_PREFIX:`, so that several deployments (or
 * test runs) share one Redis. In PostgreSQL-only mode the same concerns live in Tasker's database
 * (see `postgresNames`), which is the deployment's own.
 */
export function redisKeys(prefix: string) {
  return {
    /** BullMQ's `prefix` option: its keys are `<prefix>:tasks:<...>` (see `bullmq`). */
    bullmqPrefix: prefix,
    /** One BullMQ key of the task queue, e.g. `bullmq('wait')` or `bullmq(taskId)` (a job's hash). */
    bullmq: (suffix: string) => `${prefix}:${QUEUE_NAME}:${suffix}`,
    /** Set: the task types whose processing is paused. */
    pausedTypes: `${prefix}:paused-types`,
    /** Pub/sub channel: ids of RUNNING tasks whose cancellation was requested. */
    cancelChannel: `${prefix}:cancel`,
    /** String: a finished task's last state (JSON), for fast reads. */
    result: (taskId: string) => `${prefix}:result:${taskId}`,
    /** Namespace of @fastify/rate-limit's counters (one per key or client IP, per minute). */
    rateLimitNamespace: `${prefix}:rate-limit:`,
    /** String: who runs the recovery sweep now (a token and an expiry). */
    sweeperLock: `${prefix}:sweeper-lock`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/**
 * The prefix of every key and channel: REDIS_PREFIX, or on a Redis Cluster `{REDIS_PREFIX}`, a
 * hash tag: the cluster then hashes only the tag, so that every key of Tasker's is in one slot (on
 * one master). BullMQ's scripts each touch several keys of a queue, and a cluster runs a script
 * only on keys of one slot (docs.bullmq.io, "Redis Cluster").
 */
export function redisKeyPrefix(env: Pick<Env, 'REDIS_PREFIX' | 'REDIS_CLUSTER_NODES'>): string {
  return env.REDIS_CLUSTER_NODES ? `{${env.REDIS_PREFIX}}` : env.REDIS_PREFIX;
}

/** The same concerns in PostgreSQL-only mode (the paused types are a table: `paused_task_types`). */
export const postgresNames = {
  /** `NOTIFY` channel: ids of RUNNING tasks whose cancellation was requested. */
  cancelChannel: 'tasker_cancel',
  /** Advisory lock key (`pg_try_advisory_lock`): who runs the recovery sweep now. */
  sweeperLock: 0x7a5c_5e3e,
  /** Advisory lock key (`pg_try_advisory_lock`, both modes): which worker's dispatcher leads. */
  dispatcherLock: 0x7a5c_d15a,
} as const;
