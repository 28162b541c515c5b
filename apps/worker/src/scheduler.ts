import type { ScheduleStore } from '@tasker/db';
import { type FireOptions, fireSchedules, type Limits, type Logger } from '@tasker/engine';
import { Periodic } from './periodic.ts';

/**
 * Fires the due schedules, every `intervalMs` (SCHEDULE_INTERVAL_MS): one task per tick, made
 * PENDING like a submission, so that the dispatcher hands it out in its tenant's turn and limits.
 * Every worker runs one, without a lock: each pass holds its schedules' rows (FOR UPDATE SKIP
 * LOCKED) and a tick's task is unique, so N workers fire each tick once (`fireSchedules`).
 */
export class Scheduler extends Periodic {
  constructor(
    store: ScheduleStore,
    limits: Limits,
    options: FireOptions & { intervalMs: number },
    log: Logger,
  ) {
    super(
      options.intervalMs,
      async () => {
        const { fired, skipped } = await fireSchedules(store, limits, options);
        if (fired.length > 0 || skipped > 0) log.debug({ fired: fired.length, skipped }, 'fired schedules');
        if (skipped > 0)
          log.info({ skipped }, 'schedule ticks skipped (max_queued, or an unknown task type)');
      },
      (error) => log.warn({ err: error }, 'schedule pass failed; will retry'),
    );
  }
}
