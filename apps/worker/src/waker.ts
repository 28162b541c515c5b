import type { Logger, TaskLifecycle } from '@tasker/engine';
import { Periodic } from './periodic.ts';

/**
 * Moves back to PENDING, every `intervalMs`, the WAITING tasks whose wait is over (the lifecycle's
 * `wake`: a sleep's end, a token's timeout or early completion, a parent whose last children ended
 * at one instant): the dispatcher then hands them out again and they resume.
 *
 * Every worker has one, but only the worker whose dispatcher leads wakes (`leads`): one pass a
 * tick for the whole cluster instead of one per worker, each a walk of every parent waiting for
 * children. Waking is of use only where a dispatcher leads (a woken task waits for its handout),
 * and leading moves on a leader's death within about a second (the dispatcher's advisory lock), so
 * the waking moves with it.
 */
export class Waker extends Periodic {
  constructor(
    lifecycle: Pick<TaskLifecycle, 'wake'>,
    intervalMs: number,
    leads: () => boolean,
    log: Pick<Logger, 'debug' | 'warn'>,
  ) {
    super(
      intervalMs,
      async () => {
        if (!leads()) return;
        const count = await lifecycle.wake();
        if (count > 0) log.debug({ count }, 'woke tasks whose wait is over');
      },
      (error) => log.warn({ err: error }, 'wake pass failed; will retry'),
    );
  }
}
