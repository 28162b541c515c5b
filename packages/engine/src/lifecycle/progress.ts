import type { TaskRow } from '@tasker/db';
import type { TaskProgress } from '@tasker/tasks';
import type { LifecycleResources } from './resources.ts';

const FLUSH_MS = 200;

export interface ProgressReporter {
  /** What the handler calls, as often as it likes. */
  report(update: TaskProgress): void;
  /** Drops what is not written yet and waits for the write under way. */
  stop(): Promise<void>;
}

/**
 * A RUNNING task's progress (`{percent?, partial?, message?}`; `query_chatgpt` reports its reply as
 * it grows). Reports are coalesced: at most one write per 200 ms, the latest winning; each write is a
 * versioned change that PostgreSQL announces, so watchers see the progress live. A failed write is
 * logged and skipped: progress is a view, not an outcome.
 */
export function progressReporter(r: LifecycleResources, row: TaskRow): ProgressReporter {
  let pending: TaskProgress | undefined;
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();
  const flush = () => {
    timer = undefined;
    const value = pending;
    pending = undefined;
    if (value === undefined) return;
    writing = writing.then(async () => {
      try {
        await r.store.setProgress(row.id, value);
      } catch (error) {
        r.log.warn({ taskId: row.id, err: error }, 'could not record progress');
      }
    });
  };
  return {
    report: (update) => {
      pending = update;
      timer ??= setTimeout(flush, FLUSH_MS);
    },
    stop: async () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      pending = undefined;
      await writing;
    },
  };
}
