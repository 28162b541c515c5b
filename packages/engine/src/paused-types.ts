import type { PausedTypeStore } from '@tasker/db';
import type { RedisKeys } from './keys.ts';
import type { RedisClient } from './redis.ts';

/** Where the paused set lives: a Redis set, or the `paused_task_types` table (PostgreSQL-only mode). */
export interface PausedSet {
  list(): Promise<string[]>;
  add(name: string): Promise<void>;
  remove(name: string): Promise<void>;
}

export function redisPausedSet(redis: RedisClient, keys: RedisKeys): PausedSet {
  return {
    list: () => redis.smembers(keys.pausedTypes),
    add: async (name) => void (await redis.sadd(keys.pausedTypes, name)),
    remove: async (name) => void (await redis.srem(keys.pausedTypes, name)),
  };
}

export function postgresPausedSet(store: PausedTypeStore): PausedSet {
  return store;
}

/**
 * Which task types are paused, shared by every process through one `PausedSet`. `has` answers from
 * a copy at most `maxAgeMs` old (a worker asks for every job it takes); `has(name, { fresh: true })`
 * reads the set. If the set cannot be read, the last copy stands.
 */
export class PausedTypes {
  private cached = new Set<string>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly set: PausedSet,
    private readonly maxAgeMs = 1000,
  ) {}

  private refresh(): Promise<void> {
    this.loading ??= this.set
      .list()
      .then(
        (names) => {
          this.cached = new Set(names);
          this.loadedAt = Date.now();
        },
        () => {},
      )
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  async has(name: string, { fresh = false } = {}): Promise<boolean> {
    if (fresh || Date.now() - this.loadedAt > this.maxAgeMs) await this.refresh();
    return this.cached.has(name);
  }

  /** Every paused type, read now; `{ fresh: false }`: from the copy, when it is at most `maxAgeMs` old. */
  async list({ fresh = true } = {}): Promise<string[]> {
    if (fresh || Date.now() - this.loadedAt > this.maxAgeMs) await this.refresh();
    return [...this.cached].sort();
  }

  async add(name: string): Promise<void> {
    await this.set.add(name);
    this.cached.add(name);
  }

  async remove(name: string): Promise<void> {
    await this.set.remove(name);
    this.cached.delete(name);
  }
}
