import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Extends the lock only if we still hold it. */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
/** Releases the lock only if we still hold it. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * One holder at a time across processes, for periodic work that must not overlap (the sweep). The
 * holder's token expires after `ttlMs` unless renewed: `run` renews it every third of that while
 * the work lasts, and releases it at the end, so that a long run never overlaps the next, and a
 * crashed holder frees it within `ttlMs`.
 */
export class LeaderLock {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly ttlMs: number,
  ) {}

  /** Runs `work` if the lock is free (returns true), else does nothing (returns false). */
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
