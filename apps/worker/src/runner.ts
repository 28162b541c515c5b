import { type JobData, jobDataSchema, type Logger, type PausedTypes, type StatusBus } from '@tasker/core';
import type { TaskError, TaskRow, TaskStore } from '@tasker/db';
import { getTaskDefinition, NonRetryableError, type TaskConfig, type TaskProgress } from '@tasker/tasks';
import { type Job, UnrecoverableError, WaitingError } from 'bullmq';

/** Abort reasons the runner tells apart. */
export const SHUTDOWN = 'worker shutting down';
export const CANCELLED = 'cancelled by request';

const cancelledError = (attempt?: number): TaskError => ({
  message: 'the task was cancelled',
  name: 'CancelledError',
  code: 'CANCELLED',
  attempt,
  at: new Date().toISOString(),
});

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

const PROGRESS_FLUSH_MS = 200;

function toTaskError(error: unknown, code: string, attempt: number): TaskError {
  const base = error instanceof Error ? error : new Error(String(error));
  return { message: base.message, name: base.name, code, attempt, at: new Date().toISOString() };
}

/**
 * Runs one attempt of one task: the BullMQ processor. Claims the row (RUNNING), runs the handler
 * with a signal that fires on timeout or shutdown, and records the outcome. Every transition is
 * conditional in PostgreSQL, so a task re-delivered after a crash is completed once.
 */
export class TaskRunner {
  constructor(
    private readonly store: TaskStore,
    private readonly bus: StatusBus,
    private readonly config: TaskConfig,
    private readonly workerId: string,
    private readonly log: Logger,
    private readonly paused: PausedTypes,
  ) {}

  readonly process = async (
    job: Job<JobData>,
    token: string | undefined,
    signal?: AbortSignal,
  ): Promise<void> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed job payload: ${parsed.error.message}`);
    const { taskId } = parsed.data;
    // A job of a paused task type (queued before the pause reached us) is dropped, its row left
    // PENDING: resuming the type enqueues it again.
    if (await this.paused.has(job.name)) return;

    const row = await this.store.start(taskId, this.workerId);
    if (!row) {
      // Finished already (a re-delivered job), or its cancellation was requested while no worker
      // ran it (e.g. its worker died): end that one now.
      const cancelled = await this.store.markCancelled(taskId, cancelledError());
      if (cancelled) await this.announce(cancelled);
      return;
    }
    await this.announce(row);

    const definition = getTaskDefinition(row.name);
    if (!definition) {
      await this.fail(
        row,
        toTaskError(new Error(`unknown task type "${row.name}"`), 'UNKNOWN_TASK', row.attempts),
        true,
      );
      throw new UnrecoverableError(`unknown task type "${row.name}"`);
    }

    const timeoutMs = row.timeoutMs ?? definition.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const progress = this.progressReporter(row);
    try {
      const input = definition.input.parse(row.input);
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () =>
          reject(
            timeout.aborted
              ? new TimeoutError(`timed out after ${timeoutMs} ms`)
              : new Error(String(attemptSignal.reason ?? 'aborted')),
          );
        if (attemptSignal.aborted) onAbort();
        else attemptSignal.addEventListener('abort', onAbort, { once: true });
      });
      const raw = await Promise.race([
        Promise.resolve(
          definition.run(input, {
            taskId,
            attempt: row.attempts,
            signal: attemptSignal,
            progress: progress.report,
            config: this.config,
          }),
        ),
        aborted,
      ]);
      await progress.stop();
      const output = definition.output.safeParse(raw);
      if (!output.success) {
        const error = new Error(`handler returned an invalid result: ${output.error.message}`);
        await this.fail(row, toTaskError(error, 'INVALID_OUTPUT', row.attempts), true);
        throw new UnrecoverableError(error.message);
      }
      const completed = await this.store.complete(taskId, output.data);
      if (completed) await this.announce(completed);
    } catch (error) {
      await progress.stop();
      if (error instanceof UnrecoverableError) throw error;
      if (signal?.aborted && signal.reason === CANCELLED) {
        const cancelled = await this.store.markCancelled(taskId, cancelledError(row.attempts));
        if (cancelled) await this.announce(cancelled);
        throw new UnrecoverableError('the task was cancelled'); // never retried
      }
      if (signal?.aborted && signal.reason === SHUTDOWN && token) {
        // Hand the task back untouched: another worker (or this one, restarted) runs it again.
        const released = await this.store.release(taskId);
        if (released) await this.announce(released);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const retryable = !(error instanceof NonRetryableError);
      // BullMQ's own rule, so that the row and the job agree on which attempt is the last.
      const final = !retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      const code = error instanceof TimeoutError ? 'TIMEOUT' : 'HANDLER_ERROR';
      await this.fail(row, toTaskError(error, code, row.attempts), final);
      this.log.warn({ taskId, attempt: row.attempts, final, err: error }, 'task attempt failed');
      if (!retryable) throw new UnrecoverableError(error instanceof Error ? error.message : String(error));
      throw error;
    }
  };

  private async fail(row: TaskRow, error: TaskError, final: boolean) {
    const failed = await this.store.failAttempt(row.id, error, final);
    if (failed) await this.announce(failed);
  }

  private async announce(row: TaskRow) {
    try {
      await this.bus.announce(row);
    } catch (error) {
      // PostgreSQL has the state; watchers recover it from there.
      this.log.warn({ taskId: row.id, err: error }, 'could not publish task state');
    }
  }

  /** Coalesces progress reports: at most one write + publish per PROGRESS_FLUSH_MS. */
  private progressReporter(row: TaskRow) {
    let pending: TaskProgress | undefined;
    let timer: NodeJS.Timeout | undefined;
    let flushing: Promise<void> = Promise.resolve();
    const flush = () => {
      timer = undefined;
      const value = pending;
      pending = undefined;
      if (value === undefined) return;
      flushing = flushing.then(async () => {
        try {
          const updated = await this.store.setProgress(row.id, value);
          if (updated) await this.announce(updated);
        } catch (error) {
          this.log.warn({ taskId: row.id, err: error }, 'could not record progress');
        }
      });
    };
    return {
      report: (update: TaskProgress) => {
        pending = update;
        timer ??= setTimeout(flush, PROGRESS_FLUSH_MS);
      },
      stop: async () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        pending = undefined;
        await flushing;
      },
    };
  }
}
