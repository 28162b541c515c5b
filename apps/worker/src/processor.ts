import type { TaskError, TaskRow } from '@tasker/db';
import {
  type Claim,
  inSpan,
  type JobData,
  jobDataSchema,
  type Logger,
  type QueueJob,
  SpanKind,
  setSpanAttribute,
  type TaskLifecycle,
  tracingEnabled,
} from '@tasker/engine';
import { getTaskDefinition, type TaskConfig, type TaskDefinition } from '@tasker/tasks';
import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { persist } from './persist.ts';
import { type AttemptOutcome, runAttempt } from './run-attempt.ts';

/** Abort reasons the processor tells apart (passed to `worker.cancelJob`). */
export const SHUTDOWN = 'worker shutting down';
export const CANCELLED = 'cancelled by request';

/** How long a job of a paused task type waits before it is looked at again. */
const PAUSED_RECHECK_MS = 1000;
/** The least a job delivered before its task's run_after waits again (clocks of worker and database differ a little). */
const NOT_DUE_RECHECK_MS = 50;

export interface ProcessorOptions {
  lifecycle: TaskLifecycle;
  workerId: string;
  config: TaskConfig;
  log: Logger;
  /** Ids of the tasks this worker runs now (read by the CancelWatch). */
  running: Set<string>;
  /** Fires when shutdown stops waiting for running tasks: bookkeeping retries give up then. */
  stopping: AbortSignal;
  /** The task types this worker runs, by name: the catalog's (`getTaskDefinition`) unless given. */
  tasks?: (name: string) => TaskDefinition | undefined;
}

function toTaskError(error: unknown, code: string, attempt: number): TaskError {
  const base = error instanceof Error ? error : new Error(String(error));
  return { message: base.message, name: base.name, code, attempt, at: new Date().toISOString() };
}

/**
 * The BullMQ processor: step 5 of a task's way, as a thin caller of the lifecycle. It claims the
 * row, runs the handler (`runAttempt`: the handler's outcome, nothing more), then records that
 * outcome. Recording is kept apart from the outcome: a write that fails because PostgreSQL is away
 * is retried (`persist`) and never mistaken for a handler failure, so a finished handler never runs
 * again and an outage never costs an attempt.
 *
 * What the job then tells BullMQ: it completes whenever the outcome is recorded in PostgreSQL for
 * good (completed, failed for good, cancelled, or waiting: the handler slept); it throws only to
 * ask for a retry (BullMQ's attempts and backoff), or to hand the job back on shutdown.
 */
export function createProcessor(options: ProcessorOptions) {
  const { lifecycle, workerId, config, log, running, stopping, tasks = getTaskDefinition } = options;

  const processJob = async (
    job: QueueJob,
    token: string | undefined,
    signal: AbortSignal | undefined,
    data: JobData,
  ): Promise<void> => {
    const { taskId } = data;
    const record = <T>(what: string, write: () => Promise<T>) =>
      persist(what, write, { log, taskId, until: stopping });

    // A job of a paused type (queued before the pause reached every process) waits, delayed.
    if (await lifecycle.isPaused(job.name)) {
      await job.moveToDelayed(Date.now() + PAUSED_RECHECK_MS, token);
      throw new DelayedError();
    }

    let claim: Claim;
    try {
      claim = await record('claim', () => lifecycle.claim(taskId, workerId, job.attemptsMade + 1));
    } catch (error) {
      return handBack(job, token, error);
    }
    if (claim.why === 'not-due') {
      // Delivered before its run_after (a debounced task whose start moved): delayed again, until then.
      const delay = Math.max(NOT_DUE_RECHECK_MS, claim.runAfter.getTime() - Date.now());
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    if (!claim.row) return; // finished already (a job delivered again), or cancelled or expired before it ran
    const claimed = claim.row;
    setSpanAttribute('tasker.attempt', claimed.attempts);

    const definition = tasks(claimed.name);
    if (!definition) {
      const error = new Error(`unknown task type "${claimed.name}"`);
      await record('fail', () =>
        lifecycle.fail(claimed, toTaskError(error, 'UNKNOWN_TASK', claimed.attempts), true),
      );
      return;
    }

    running.add(taskId);
    let outcome: AttemptOutcome;
    const progress = lifecycle.progress(claimed);
    try {
      outcome = await runAttempt(definition, claimed, {
        signal,
        progress: progress.report,
        config,
        steps: (attemptSignal) => lifecycle.steps(claimed, attemptSignal),
        recordUsage: async (usage) => {
          await record('usage', () => lifecycle.recordUsage(claimed, usage));
        },
        // A budget check PostgreSQL cannot answer is waited out like a write: an outage costs no
        // attempt, and no model call starts unchecked (a budget reached still throws at once).
        checkBudget: () => record('budget check', () => lifecycle.checkBudget(claimed.tenantId)),
        llmCache: lifecycle.llmCache(claimed.tenantId),
      });
    } finally {
      running.delete(taskId);
      await progress.stop();
    }

    setSpanAttribute('tasker.outcome', outcome.kind);
    try {
      switch (outcome.kind) {
        case 'completed':
          await record('complete', () => lifecycle.complete(claimed, outcome.output));
          return;
        case 'invalid-output':
          await record('fail', () =>
            lifecycle.fail(claimed, toTaskError(outcome.error, 'INVALID_OUTPUT', claimed.attempts), true),
          );
          return;
        case 'waiting':
          // The handler slept: the task waits (or ends CANCELLED, if asked meanwhile), and the job
          // completes: the task holds neither a slot nor a job until its wait ends.
          await record('wait', () => lifecycle.wait(claimed, outcome.suspension));
          return;
        case 'held':
          // Its tenant is over an LLM budget: the attempt is given back uncounted and the job ends;
          // the dispatcher hands the task out again once the window turns or the budget is raised.
          await record('hold', () => lifecycle.hold(claimed));
          log.info({ taskId, err: outcome.error }, 'task held: its tenant is over an LLM budget');
          return;
        case 'aborted':
          if (outcome.reason === SHUTDOWN) return handBack(job, token, undefined, claimed);
          await record('cancel', () => lifecycle.endCancelled(taskId, claimed.attempts, claimed));
          return;
        case 'failed': {
          // BullMQ's own rule, so that the row and the job agree on which attempt is the last.
          const final = !outcome.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
          const error = toTaskError(outcome.error, outcome.code, claimed.attempts);
          const failed = await record('fail', () => lifecycle.fail(claimed, error, final));
          log.warn({ taskId, attempt: claimed.attempts, final, err: outcome.error }, 'task attempt failed');
          if (final || failed?.status !== 'PENDING') return;
          throw outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
        }
      }
    } catch (error) {
      if (stopping.aborted) return handBack(job, token, error, claimed);
      throw error;
    }
  };

  return async (job: QueueJob, token: string | undefined, signal?: AbortSignal): Promise<void> => {
    const parsed = jobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`malformed job payload: ${parsed.error.message}`);
    const data = parsed.data;
    if (!tracingEnabled()) return processJob(job, token, signal, data);
    // One span per attempt, a child of the submitting request's span (its context rode in the job).
    return inSpan(
      `task ${job.name}`,
      {
        kind: SpanKind.CONSUMER,
        parent: { traceparent: data.traceparent, tracestate: data.tracestate },
        attributes: {
          'tasker.task.id': data.taskId,
          'tasker.task.type': job.name,
          'tasker.worker': workerId,
        },
      },
      () => processJob(job, token, signal, data),
    );
  };

  /**
   * Shutdown (or a database that did not come back before it): the attempt is given back untouched
   * and the job returns to the queue without counting; another worker, or this one restarted, runs
   * it again.
   */
  async function handBack(job: QueueJob, token: string | undefined, cause: unknown, row?: TaskRow) {
    if (!stopping.aborted && cause !== undefined) throw cause;
    if (row) await lifecycle.release(row.id).catch(() => undefined);
    if (!token) throw cause ?? new Error(SHUTDOWN);
    await job.moveToWait(token);
    throw new WaitingError();
  }
}
