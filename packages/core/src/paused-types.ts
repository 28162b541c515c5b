import type { Redis } from 'ioredis';

/**
 * Which task types are paused, shared by every process through one Redis set. Reads are served
 * from a copy at most `maxAgeMs` old (a worker asks for every job it takes); if Redis cannot be
 * read the last copy stands.
 */
export class PausedTypes {
  private readonly key: string;
  private cached = new Set<string>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly maxAgeMs = 1000,
  ) {
    this.key = `${prefix}:paused-types`;
  }

  private refresh(): Promise<void> {
    this.loading ??= this.redis
      .smembers(this.key)
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

  async has(name: string): Promise<boolean> {
    if (Date.now() - this.loadedAt > this.maxAgeMs) await this.refresh();
    return this.cached.has(name);
  }

  async list(): Promise<string[]> {
    await this.refresh();
    return [...this.cached].sort();
  }

  async add(name: string): Promise<void> {
    await this.redis.sadd(this.key, name);
    this.cached.add(name);
  }

  async remove(name: string): Promise<void> {
    await this.redis.srem(this.key, name);
    this.cached.delete(name);
  }
}
