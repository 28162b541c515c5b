import { randomUUID } from 'node:crypto';
import { holdsAdvisoryLock, postgresConnection } from '@tasker/db';
import postgres, { type Sql } from 'postgres';
import type { RedisClient } from './redis.ts';

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
    private readonly redis: RedisClient,
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
 * A client of one connection kept for good (no max_lifetime): the session that holds a process's
 * PostgreSQL advisory locks. A pool's connections come and go, and a reserved one that drops cannot
 * be used again (postgres.js fails on it), so a session lock lives here.
 */
export function createLockSession(url: string): Sql {
  const { url: bare, ssl } = postgresConnection(url);
  return postgres(bare, {
    ssl,
    max: 1,
    max_lifetime: null,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: 'tasker-locks' },
  });
}

/**
 * A session advisory lock on `session` (see `createLockSession`). PostgreSQL releases it when the
 * session ends, so a crashed holder (or a dropped connection) frees it at once, and nothing needs
 * renewing. The sweep runs under it in PostgreSQL-only mode; the dispatcher leads under it in both
 * modes, checking with `acquire` that it still holds it, and marks its tasks only on `session`
 * while it does (`holdsAdvisoryLock`).
 */
export class PostgresLeaderLock implements LeaderLock {
  constructor(
    readonly session: Sql,
    readonly key: number,
  ) {}

  /**
   * Holds the lock now: true if this session has it already, or took it because it was free. The
   * lock is never counted twice, so one `release` lets it go.
   */
  async acquire(): Promise<boolean> {
    const [row] = await this.session<{ held: boolean }[]>`
      select case when ${holdsAdvisoryLock(this.session, this.key)} then true
                  else pg_try_advisory_lock(${this.key}) end as held`;
    return row?.held === true;
  }

  async release(): Promise<void> {
    await this.session`select pg_advisory_unlock(${this.key})`.catch(() => {});
  }

  async run(work: () => Promise<void>): Promise<boolean> {
    if (!(await this.acquire())) return false;
    try {
      await work();
    } finally {
      await this.release();
    }
    return true;
  }
}
