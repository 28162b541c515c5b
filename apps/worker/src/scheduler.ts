import type { ScheduleStore } from '@tasker/db';
import { type FireOptions, fireSchedules, type LifecycleResources, type Logger } from '@tasker/engine';
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
    resources: Pick<LifecycleResources, 'limits' | 'observe'>,
    options: FireOptions & { intervalMs: number },
    log: Logger,
  ) {
    super(
      options.intervalMs,
      async () => {
        const { fired, skipped, unplanned } = await fireSchedules(store, resources.limits, options);
        for (const { id, error } of unplanned)
          log.warn(
            { err: error, scheduleId: id },
            'schedule not planned (its cron or zone): tried again in a minute',
          );
        // Counted as any task created or refused (tasker_tasks_created_total, tasker_tasks_refused_total).
        for (const row of fired) resources.observe?.({ kind: 'created', row });
        for (const { tenantId, name, reason } of skipped)
          resources.observe?.({ kind: 'refused', reason, name, tenantId });
        if (fired.length > 0 || skipped.length > 0)
          log.debug({ fired: fired.length, skipped: skipped.length }, 'fired schedules');
        if (skipped.length > 0)
          log.info(
            { skipped: skipped.length },
            'schedule ticks skipped (max_queued, or an unknown task type)',
          );
      },
      (error) => log.warn({ err: error }, 'schedule pass failed; will retry'),
    );
  }
}
