import type { TaskRow } from '@tasker/db';
import type { Redis } from 'ioredis';
import { isTerminal, type TaskEvent, taskEventSchema, toTaskEvent } from './view.ts';

/**
 * Where state changes leave a worker: each one is published once on one channel, and a finished
 * task's state is cached so that reads need not reach PostgreSQL.
 */
export class StatusBus {
  readonly channel: string;
  /** Where cancellation requests go; every worker listens and aborts the task if it runs it. */
  readonly cancelChannel: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {
    this.channel = `${prefix}:events`;
    this.cancelChannel = `${prefix}:cancel`;
  }

  private resultKey(id: string) {
    return `${this.prefix}:result:${id}`;
  }

  /** Publishes the row's new state; caches it when final (before publishing, so a reader told by the event finds it). */
  async announce(row: TaskRow): Promise<void> {
    const event = JSON.stringify(toTaskEvent(row));
    // Two commands on one connection keep their order; with auto-pipelining they share one write
    // (with those of every other task that changes state in the same tick).
    await Promise.all([
      isTerminal(row.status)
        ? this.redis.set(this.resultKey(row.id), event, 'EX', this.ttlSeconds)
        : undefined,
      this.redis.publish(this.channel, event),
    ]);
  }

  /** Asks whichever worker runs this task to abort it. */
  async requestCancel(id: string): Promise<void> {
    await this.redis.publish(this.cancelChannel, id);
  }

  /** The cached final state, or undefined (not finished, expired, or unreadable). */
  async cached(id: string): Promise<TaskEvent | undefined> {
    const raw = await this.redis.get(this.resultKey(id));
    return raw === null ? undefined : StatusBus.parse(raw);
  }

  /** Parses a message received on `channel`. */
  static parse(message: string): TaskEvent | undefined {
    try {
      const parsed = taskEventSchema.safeParse(JSON.parse(message));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
}
