import type { TaskRow } from '@tasker/db';
import type { LlmCallUsage } from '@tasker/tasks';

/** What a submission's events carry of its task (a batch reads no more of its rows back). */
export type SubmittedTask = Pick<TaskRow, 'id' | 'tenantId' | 'name'>;

/**
 * What the lifecycle tells observers (metrics), once per transition that really happened: every
 * transition is a conditional UPDATE, and an event is emitted only when it changed the row, so each
 * outcome is seen exactly once, in the process that made it (created: the server; an attempt's
 * start and end, completed, failed: the worker; cancelled: whichever process ended the task).
 */
export type LifecycleEvent =
  /** A submission inserted a new row (not an idempotent replay). */
  | { kind: 'created'; row: SubmittedTask }
  /** A submission was answered with an existing task, unchanged: an idempotent replay, or the holder of its singleton key. */
  | { kind: 'deduplicated'; row: SubmittedTask; reason: 'idempotency' | 'singleton' }
  /** A debounced submission joined the PENDING task holding its key (`row`: with its input and start now). */
  | { kind: 'debounced'; row: TaskRow }
  /** A worker claimed the row: attempt `row.attempts` starts now (`row.startedAt`). */
  | { kind: 'started'; row: TaskRow }
  /**
   * A running attempt ended: `row` is the row as claimed (its `startedAt` is the attempt's start).
   * `suspended`: its handler slept (ctx.sleep): the task is WAITING.
   */
  | {
      kind: 'attempt-ended';
      row: TaskRow;
      outcome: 'completed' | 'failed' | 'retrying' | 'cancelled' | 'suspended' | 'held';
    }
  /** The task reached a terminal state: `row.status` is terminal (COMPLETED, FAILED, CANCELLED or EXPIRED). */
  | { kind: 'finished'; row: TaskRow }
  /** A model call of attempt `row.attempts` (`ctx.llm`) reported what it used; recorded. */
  | { kind: 'llm-call'; row: TaskRow; usage: LlmCallUsage }
  /**
   * A submission was refused and nothing stored: its tenant's or type's queue is full (max_queued);
   * or a schedule's tick, its task type gone from the catalog (UNKNOWN_TYPE).
   */
  | {
      kind: 'refused';
      reason: 'QUEUE_FULL' | 'UNKNOWN_TYPE' | 'BUDGET_EXCEEDED';
      name: string;
      tenantId: string;
    };

export type LifecycleObserver = (event: LifecycleEvent) => void;
