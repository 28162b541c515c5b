import type { Sql } from 'postgres';
import { postgresNames, type RedisKeys } from './keys.ts';
import type { RedisClient } from './redis.ts';

/**
 * The fast path of cancelling a RUNNING task: its id, sent to every worker; the one running it
 * aborts the handler at once. Both transports deliver at most once (a worker whose listening
 * connection is reconnecting never hears it), so this is only the fast path: the request itself is
 * recorded in PostgreSQL (`cancel_requested_at`), and each worker also checks the tasks it runs
 * there (`CancelWatch`, at most `WORKER_CANCEL_CHECK_MS` apart).
 */
export interface CancelSignals {
  /** Best effort: true when the signal was sent. */
  send(taskId: string): Promise<boolean>;
  /** Calls `onCancel` with each id heard, until the returned function is called. */
  listen(onCancel: (taskId: string) => void): Promise<() => Promise<void>>;
}

/** With Redis: pub/sub on `keys.cancelChannel`. */
export class RedisCancelSignals implements CancelSignals {
  constructor(
    private readonly keys: RedisKeys,
    /** A connection for publishing (commands). */
    private readonly publisher: RedisClient,
    /** Opens a connection of its own for subscribing (a subscribed connection takes no commands). */
    private readonly connect: () => RedisClient,
  ) {}

  async send(taskId: string): Promise<boolean> {
    try {
      await this.publisher.publish(this.keys.cancelChannel, taskId);
      return true;
    } catch {
      return false;
    }
  }

  async listen(onCancel: (taskId: string) => void): Promise<() => Promise<void>> {
    const subscriber = this.connect();
    subscriber.on('message', (channel: string, taskId: string) => {
      if (channel === this.keys.cancelChannel) onCancel(taskId);
    });
    await subscriber.subscribe(this.keys.cancelChannel);
    return async () => subscriber.disconnect();
  }
}

/**
 * PostgreSQL-only mode: `NOTIFY tasker_cancel` (on `sql`), heard on one `LISTEN` connection per
 * worker (opened by `listenOn`: PostgreSQL itself, `DbClient.direct`, never a pooler).
 */
export class PostgresCancelSignals implements CancelSignals {
  constructor(
    private readonly sql: Sql,
    private readonly listenOn: Sql = sql,
  ) {}

  async send(taskId: string): Promise<boolean> {
    try {
      await this.sql`select pg_notify(${postgresNames.cancelChannel}, ${taskId})`;
      return true;
    } catch {
      return false;
    }
  }

  async listen(onCancel: (taskId: string) => void): Promise<() => Promise<void>> {
    const { unlisten } = await this.listenOn.listen(postgresNames.cancelChannel, onCancel);
    return unlisten;
  }
}
