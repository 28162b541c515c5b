import type { Logger, TaskLifecycle } from '@tasker/engine';
import { Periodic } from './periodic.ts';

/**
 * Ends EXPIRED, every `intervalMs`, the queued tasks not started within their ttl (the lifecycle's
 * `expire`). Every worker runs one, without a lock: each call skips the rows another one holds.
 * Paused types and a paused queue do not stop it: an expired task ends whether or not it could run.
 */
export class Expirer extends Periodic {
  constructor(lifecycle: TaskLifecycle, intervalMs: number, log: Logger) {
    super(
      intervalMs,
      async () => {
        const count = await lifecycle.expire();
        if (count > 0) log.info({ count }, 'expired tasks not started within their ttl');
      },
      (error) => log.warn({ err: error }, 'expiry pass failed; will retry'),
    );
  }
}
