import type { Logger, PausedTypes, StatusBus, TaskQueue } from '@tasker/core';
import type { TaskStore } from '@tasker/db';
import type { Redis } from 'ioredis';

const BATCH = 500;

export interface SweeperOptions {
  intervalMs: number;
  /** A row must have been still this long before it is checked (covers the insert → enqueue gap). */
  graceMs: number;
  /** Finished tasks older than this are deleted; 0 keeps them. */
  retentionMs: number;
}

const PRUNE_BATCH = 1000;
/** At most this many batches per tick, so that a large backlog is pruned over several ticks. */
const PRUNE_BATCHES_PER_TICK = 20;

/**
 * Makes PostgreSQL's word final: finds unfinished tasks whose BullMQ job is missing (the server
 * died between its two writes, or Redis restarted empty) and enqueues them again; ends as FAILED
 * those whose job BullMQ gave up on without the worker recording it (stalled too often).
 * Every worker runs one; a Redis lock lets one sweep at a time.
 */
export class Sweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly lockKey: string;

  constructor(
    private readonly store: TaskStore,
    private readonly queue: TaskQueue,
    private readonly bus: StatusBus,
    private readonly redis: Redis,
    prefix: string,
    private readonly options: SweeperOptions,
    private readonly log: Logger,
    private readonly paused: PausedTypes,
  ) {
    this.lockKey = `${prefix}:sweeper-lock`;
  }

  start(): void {
    const tick = () => {
      this.running = this.sweepIfLeader()
        .catch((error) => this.log.warn({ err: error }, 'sweep failed; will retry'))
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, this.options.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async sweepIfLeader(): Promise<void> {
    const acquired = await this.redis.set(this.lockKey, '1', 'PX', this.options.intervalMs, 'NX');
    if (acquired !== 'OK') return;
    await this.sweep();
    await this.prune();
  }

  /** Retention: deletes finished tasks older than retentionMs, in short batches. */
  async prune(): Promise<number> {
    if (this.options.retentionMs <= 0) return 0;
    const before = new Date(Date.now() - this.options.retentionMs);
    let total = 0;
    for (let i = 0; i < PRUNE_BATCHES_PER_TICK; i++) {
      const deleted = await this.store.pruneFinished(before, PRUNE_BATCH);
      total += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    if (total > 0) this.log.info({ deleted: total }, 'pruned finished tasks past retention');
    return total;
  }

  /** One pass over every stale unfinished row. Returns what it did (for tests and logs). */
  async sweep(): Promise<{ checked: number; requeued: number; failed: number }> {
    const before = new Date(Date.now() - this.options.graceMs);
    const totals = { checked: 0, requeued: 0, failed: 0 };
    let cursor: { updatedAt: Date; id: string } | undefined;
    for (;;) {
      const rows = await this.store.findStale(before, BATCH, cursor);
      if (rows.length === 0) break;
      const last = rows[rows.length - 1];
      if (last) cursor = { updatedAt: last.updatedAt, id: last.id };
      const states = await this.queue.inspect(rows.map((r) => r.id));
      const pausedTypes = new Set(await this.paused.list());
      // A paused type's PENDING rows have no job on purpose.
      const missing = rows.filter(
        (r) => states.get(r.id) === 'missing' && !(r.status === 'PENDING' && pausedTypes.has(r.name)),
      );
      await this.queue.enqueue(missing);
      for (const row of rows.filter((r) => states.get(r.id) === 'failed')) {
        const reason = (await this.queue.failedReason(row.id)) ?? 'the queue gave up on this task';
        const failed = await this.store.failUnfinished(row.id, {
          message: reason,
          name: 'QueueError',
          code: /stalled/i.test(reason) ? 'STALLED' : 'QUEUE_FAILED',
          at: new Date().toISOString(),
        });
        if (failed) {
          await this.bus.announce(failed);
          totals.failed++;
        }
      }
      totals.checked += rows.length;
      totals.requeued += missing.length;
      if (rows.length < BATCH) break;
    }
    if (totals.requeued > 0 || totals.failed > 0) this.log.info(totals, 'sweeper recovered tasks');
    return totals;
  }
}
