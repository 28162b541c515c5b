import type { LeaderLock, Logger, TaskLifecycle } from '@tasker/engine';
import { Periodic } from './periodic.ts';

export interface SweeperOptions {
  intervalMs: number;
  /** A row must have been still this long before it is checked (covers the insert → enqueue gap). */
  graceMs: number;
  /** Finished tasks older than this are deleted; 0 keeps them. */
  retentionMs: number;
}

/**
 * Runs the lifecycle's recovery (`recover`), retention (`prune`, and `maintainPartitions` once the
 * tasks table is partitioned) and table upkeep (`vacuum`) every
 * `intervalMs`. Every worker has one; a lock held while a sweep lasts (`LeaderLock`: Redis, or a
 * PostgreSQL advisory lock) lets one sweep at a time.
 */
export class Sweeper extends Periodic {
  constructor(
    private readonly lifecycle: TaskLifecycle,
    private readonly lock: LeaderLock,
    private readonly options: SweeperOptions,
    log: Logger,
  ) {
    super(
      options.intervalMs,
      () => this.sweepOnce(),
      (error) => log.warn({ err: error }, 'sweep failed; will retry'),
    );
  }

  /** One sweep, if no other worker is sweeping now. */
  async sweepOnce(): Promise<void> {
    await this.lock.run(async () => {
      await this.lifecycle.recover(this.options.graceMs);
      await this.lifecycle.prune(this.options.retentionMs);
      await this.lifecycle.maintainPartitions(this.options.retentionMs);
      await this.lifecycle.pruneLlmCache();
      await this.lifecycle.vacuum();
    });
  }
}
