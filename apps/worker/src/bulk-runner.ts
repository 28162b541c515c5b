import type { Logger, TaskLifecycle } from '@tasker/engine';
import { Periodic } from './periodic.ts';

export interface BulkRunnerOptions {
  /** How often it looks for an operation to run (BULK_POLL_MS). */
  intervalMs: number;
  /** Tasks per chunk (BULK_CHUNK_SIZE). */
  chunkSize: number;
  /** How long it holds an operation between chunks (BULK_LEASE_MS): past that, another worker takes it. */
  leaseMs: number;
}

/**
 * Runs the bulk cancels and retries (`POST /tasks/cancel`, `POST /tasks/retry`), every worker one at
 * a time: every `intervalMs` it takes the oldest running operation no one holds (a new one, or one
 * whose worker died: its lease ran out), and works through it a chunk at a time, to its end (the
 * lifecycle's `runBulk`), then looks for the next one. A server only records an operation; the
 * workers run it, so an operation outlives the server that took the request, and any worker that
 * dies mid-way leaves it to another after BULK_LEASE_MS. Stopping gives the operation back at once.
 */
export class BulkRunner extends Periodic {
  private readonly stopping = new AbortController();

  constructor(lifecycle: TaskLifecycle, runner: string, options: BulkRunnerOptions, log: Logger) {
    const { store } = lifecycle.resources;
    super(
      options.intervalMs,
      async () => {
        for (;;) {
          if (this.stopping.signal.aborted) return;
          const op = await store.bulk.take(runner, options.leaseMs);
          if (!op) return;
          log.info({ operationId: op.id, action: op.action, done: op.done }, 'bulk operation taken');
          try {
            const end = await lifecycle.runBulk(op, runner, { ...options, signal: this.stopping.signal });
            if ('finished' in end) {
              const { status, done, matched } = end.finished;
              log.info({ operationId: op.id, status, done, matched }, 'bulk operation ended');
            } else {
              log.warn({ operationId: op.id, why: end.released }, 'bulk operation given back');
            }
          } catch (error) {
            // A chunk that failed changed nothing (its transaction rolled back): give it back, and
            // this or another worker goes on from the last chunk that committed.
            log.warn(
              { operationId: op.id, err: error },
              'bulk operation chunk failed; given back, will go on',
            );
            await store.bulk.release(op.id, runner).catch(() => {});
            return;
          }
        }
      },
      (error) => log.warn({ err: error }, 'bulk runner pass failed; will retry'),
    );
  }

  override async stop(): Promise<void> {
    this.stopping.abort();
    await super.stop();
  }
}
