import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Sql } from 'postgres';

/**
 * One holder at a time across processes, for periodic work that must not overlap (the sweep).
 * `run` does the work only if it got the lock, holds it while the work lasts, and lets go at the
 * end; a crashed holder frees it on its own.
 */
export interface LeaderLock {
  /** Runs `work` if the lock is free (returns true), else does nothing (returns false). */
  run(work: () => Promise<void>): Promise<boolean>;
}

/** Extends the lock only if we still hold it. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
/** Releases the lock only if we still hold it. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * With Redis: a token that expires after `ttlMs` unless renewed. `run` renews it every third of
 * that while the work lasts, so that a long run never overlaps the next, and a crashed holder frees
 * it within `ttlMs`.
 */
export class RedisLeaderLock implements LeaderLock {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {}

  async run(work: () => Promise<void>): Promise<boolean> {
    const token = randomUUID();
    const acquired = await this.redis.set(this.key, token, 'PX', this.ttlMs, 'NX');
    if (acquired !== 'OK') return false;
    const renew = setInterval(
      () => void this.redis.eval(RENEW, 1, this.key, token, this.ttlMs).catch(() => {}),
      Math.max(50, Math.floor(this.ttlMs / 3)),
    );
    try {
      await work();
    } finally {
      clearInterval(renew);
      await this.redis.eval(RELEASE, 1, this.key, token).catch(() => {});
    }
    return true;
  }
}

/**
 * PostgreSQL-only mode: a session advisory lock on a connection reserved for the work. PostgreSQL
 * releases it when that session ends, so a crashed holder (or a dropped connection) frees it at
 * once, and nothing needs renewing.
 */
export class PostgresLeaderLock implements LeaderLock {
  constructor(
    private readonly sql: Sql,
    private readonly key: number,
  ) {}

  async run(work: () => Promise<void>): Promise<boolean> {
    const session = await this.sql.reserve();
    try {
      const [row] = await session<{ locked: boolean }[]>`select pg_try_advisory_lock(${this.key}) as locked`;
      if (!row?.locked) return false;
      try {
        await work();
      } finally {
        await session`select pg_advisory_unlock(${this.key})`.catch(() => {});
      }
      return true;
    } finally {
      session.release();
    }
  }
}
