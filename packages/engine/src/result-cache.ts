import { isTerminal, type TaskRow } from '@tasker/db';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { type TaskEvent, taskEventSchema, toTaskEvent } from './view.ts';

/**
 * Finished tasks' last states in Redis, so that polling clients (`GET /get-task-output` in a loop)
 * are answered without PostgreSQL. A cache only: every write is best effort, and a miss (expired,
 * never written, Redis away) falls back to PostgreSQL.
 */
export class ResultCache {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlSeconds: number,
  ) {}

  /** Caches the row if it is finished. */
  async put(row: TaskRow): Promise<void> {
    if (!isTerminal(row.status)) return;
    await this.redis.set(this.keys.result(row.id), JSON.stringify(toTaskEvent(row)), 'EX', this.ttlSeconds);
  }

  /** Forgets a task's cached state (it is running again). */
  async drop(id: string): Promise<void> {
    await this.redis.del(this.keys.result(id));
  }

  /** The cached final state, or undefined (not finished, expired, unreadable). */
  async get(id: string): Promise<TaskEvent | undefined> {
    const raw = await this.redis.get(this.keys.result(id));
    if (raw === null) return undefined;
    try {
      const parsed = taskEventSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
}
