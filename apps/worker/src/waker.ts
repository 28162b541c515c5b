import type { Logger, TaskLifecycle } from '@tasker/engine';
import { Periodic } from './periodic.ts';

/**
 * Moves back to PENDING, every `intervalMs`, the WAITING tasks whose wait is over (the lifecycle's
 * `wake`): a handler that slept (ctx.sleep) is then handed out again by the dispatcher and resumes.
 * Every worker runs one, without a lock: each call skips the rows another one holds.
 */
export class Waker extends Periodic {
  constructor(lifecycle: TaskLifecycle, intervalMs: number, log: Logger) {
    super(
      intervalMs,
      async () => {
        const count = await lifecycle.wake();
        if (count > 0) log.debug({ count }, 'woke tasks whose sleep is over');
      },
      (error) => log.warn({ err: error }, 'wake pass failed; will retry'),
    );
  }
}
