import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/**
 * Which task types are paused, shared by every process through one Redis set. `has` answers from a
 * copy at most `maxAgeMs` old (a worker asks for every job it takes); `has(name, { fresh: true })`
 * asks Redis. If Redis cannot be read, the last copy stands.
 */
export class PausedTypes {
  private cached = new Set<string>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly maxAgeMs = 1000,
  ) {}

  private refresh(): Promise<void> {
    this.loading ??= this.redis
      .smembers(this.keys.pausedTypes)
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

  async list(): Promise<string[]> {
    await this.refresh();
    return [...this.cached].sort();
  }

  async add(name: string): Promise<void> {
    await this.redis.sadd(this.keys.pausedTypes, name);
    this.cached.add(name);
  }

  async remove(name: string): Promise<void> {
    await this.redis.srem(this.keys.pausedTypes, name);
    this.cached.delete(name);
  }
}
