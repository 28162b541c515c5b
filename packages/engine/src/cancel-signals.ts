import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/**
 * The fast path of cancelling a RUNNING task: its id, published to every worker; the one running it
 * aborts the handler at once. Pub/sub delivers at most once (a worker whose subscriber is
 * reconnecting never hears it), so it is only the fast path: the request itself is recorded in
 * PostgreSQL (`cancel_requested_at`), and each worker also checks the tasks it runs there
 * (`CancelWatch`, at most `WORKER_CANCEL_CHECK_MS` apart).
 */
export class CancelSignals {
  constructor(
    private readonly keys: RedisKeys,
    /** A connection for publishing (commands). */
    private readonly publisher: Redis,
  ) {}

  /** Best effort: true when the signal was sent. */
  async send(taskId: string): Promise<boolean> {
    try {
      await this.publisher.publish(this.keys.cancelChannel, taskId);
      return true;
    } catch {
      return false;
    }
  }

  /** Subscribes `subscriber` (a connection of its own) and calls `onCancel` with each id heard. */
  async listen(subscriber: Redis, onCancel: (taskId: string) => void): Promise<void> {
    subscriber.on('message', (channel: string, taskId: string) => {
      if (channel === this.keys.cancelChannel) onCancel(taskId);
    });
    await subscriber.subscribe(this.keys.cancelChannel);
  }
}
