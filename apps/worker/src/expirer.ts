import type { Logger, TaskLifecycle } from '@tasker/engine';

/**
 * Ends EXPIRED, every `intervalMs`, the queued tasks not started within their ttl (the lifecycle's
 * `expire`). Every worker runs one, without a lock: each call skips the rows another one holds.
 * Paused types and a paused queue do not stop it: an expired task ends whether or not it could run.
 */
export class Expirer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly lifecycle: TaskLifecycle,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () => {
      this.running = this.lifecycle
        .expire()
        .then((count) => {
          if (count > 0) this.log.info({ count }, 'expired tasks not started within their ttl');
        })
        .catch((error) => this.log.warn({ err: error }, 'expiry pass failed; will retry'))
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
