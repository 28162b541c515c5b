import type { TaskStore } from '@tasker/db';
import type { Logger } from '@tasker/engine';

/**
 * The sure path of cancelling a running task. The Redis signal is fast but may be lost (a worker
 * whose subscriber is reconnecting never hears it); the request itself is in PostgreSQL. Every
 * `intervalMs`, one query asks which of the tasks this worker runs have a recorded request, and
 * `abort` is called for each (it is a no-op for a task already aborted).
 */
export class CancelWatch {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: TaskStore,
    private readonly running: ReadonlySet<string>,
    private readonly abort: (taskId: string) => void,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = async () => {
      if (this.running.size > 0) {
        try {
          for (const id of await this.store.cancelRequested([...this.running])) this.abort(id);
        } catch (error) {
          this.log.debug({ err: error }, 'could not check for cancel requests');
        }
      }
      if (this.timer) this.timer = setTimeout(tick, this.intervalMs);
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
