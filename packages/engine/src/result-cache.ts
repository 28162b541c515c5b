import { isTerminal, type TaskRow } from '@tasker/db';
import { z } from 'zod';
import type { RedisKeys } from './keys.ts';
import type { RedisClient } from './redis.ts';
import { taskEventSchema, toTaskEvent } from './view.ts';

const entrySchema = z.object({ tenantId: z.string(), event: taskEventSchema });
export type CachedResult = z.output<typeof entrySchema>;

/**
 * Finished tasks' last states, so that polling clients (`GET /get-task-output` in a loop) are
 * answered without PostgreSQL. A cache only: every write is best effort, and a miss (expired, never
 * written, cache away) falls back to PostgreSQL.
 */
export interface ResultCache {
  /** Caches the row if it is finished. */
  put(row: TaskRow): Promise<void>;
  /** Forgets a task's cached state (it is running again). */
  drop(id: string): Promise<void>;
  /** The cached final state and its tenant, or undefined (not finished, expired, unreadable). */
  get(id: string): Promise<CachedResult | undefined>;
}

/** With Redis: one string per finished task, expiring after RESULT_CACHE_TTL_SECONDS. */
export class RedisResultCache implements ResultCache {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly ttlSeconds: number,
  ) {}

  async put(row: TaskRow): Promise<void> {
    if (!isTerminal(row.status)) return;
    const entry: CachedResult = { tenantId: row.tenantId, event: toTaskEvent(row) };
    await this.redis.set(this.keys.result(row.id), JSON.stringify(entry), 'EX', this.ttlSeconds);
  }

  async drop(id: string): Promise<void> {
    await this.redis.del(this.keys.result(id));
  }

  async get(id: string): Promise<CachedResult | undefined> {
    const raw = await this.redis.get(this.keys.result(id));
    if (raw === null) return undefined;
    try {
      const parsed = entrySchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * PostgreSQL-only mode: no cache. A copy in PostgreSQL would cost the same read it saves, so every
 * read goes to the row itself (one primary-key lookup).
 */
export const noResultCache: ResultCache = {
  put: async () => {},
  drop: async () => {},
  get: async () => undefined,
};
