import type { Suspension, TaskError, TaskRow, TaskStepRow } from '@tasker/db';
import {
  InvalidStepError,
  MAX_SLEEP_MS,
  MAX_STEP_ID_LENGTH,
  NonDeterminismError,
  type TaskContext,
} from '@tasker/tasks';
import { findUnstorable } from '../unstorable.ts';
import { ChildSteps } from './children.ts';
import type { LifecycleResources } from './resources.ts';
import { TokenSteps } from './tokens.ts';

/**
 * A sleep with less than this left is slept in the worker (and recorded) instead of suspending the
 * task: a suspension costs a round through PostgreSQL, the waker and the dispatcher, and its job's
 * end must reach the queue before the task is handed out again. It also absorbs the clocks of two
 * workers disagreeing a little about a recorded sleep's end.
 */
export const IN_PROCESS_SLEEP_MS = 1000;

/** Step ids of Tasker's own steps start with this; a handler's may not. */
const RESERVED_PREFIX = '$';

/** Step ids of sleeps: their place in the handler's order. */
const sleepId = (seq: number) => `${RESERVED_PREFIX}sleep:${seq}`;

/**
 * What the StepRunner lends the steps of other kinds (wait tokens, child tasks): its order, its
 * record, its way to suspend the run.
 */
export interface StepOrder {
  /** The next place in the handler's order for `id` (once per run). */
  take(id: string): number;
  /** The next place, without taking it. */
  peek(): number;
  /** The step recorded for `id` at `seq`; a recorded order this run does not follow throws. */
  find(id: string, seq: number): Promise<TaskStepRow | undefined>;
  /** Ends the run here: the task waits. */
  suspend(suspension: Suspension): void;
}

/** `step` and `sleep` as a handler's context has them. */
export type StepContext = Pick<
  TaskContext,
  'step' | 'sleep' | 'sleepUntil' | 'createToken' | 'waitForToken' | 'run' | 'runMany'
>;

/** The error a failed step records (as an attempt's error: never a stack trace). */
function stepError(error: unknown, attempt: number): TaskError {
  const base = error instanceof Error ? error : new Error(String(error));
  return {
    message: base.message,
    name: base.name,
    code: 'STEP_FAILED',
    attempt,
    at: new Date().toISOString(),
  };
}

/**
 * The durable steps of one run of a task's handler (`ctx.step`, `ctx.sleep`, `ctx.sleepUntil`).
 *
 * - The steps recorded by earlier runs are read once, at the first step (a handler without steps
 *   costs nothing). Each call takes the next place in the handler's order (`seq`); a completed step
 *   recorded under the same id and place answers without running. A recorded step met at another
 *   place, or another id where a completed step was recorded: NonDeterminismError, which also
 *   fails the run if the handler catches it (`nonDeterminism`).
 * - A step that runs records its end (`store.steps.record`): its JSON result, or its error (then it
 *   throws, and runs again on the next attempt).
 * - A sleep whose end is more than IN_PROCESS_SLEEP_MS away suspends the run: `suspended` resolves
 *   with where it stopped, and the sleep never returns (the worker ends the attempt and records
 *   `wait`, which records the sleep as a `waiting` step). The run after the wait finds it and
 *   records it completed.
 */
export class StepRunner {
  /** Resolves when a sleep suspends the run. */
  readonly suspended: Promise<Suspension>;
  /** Set once a step met another order than recorded: the run fails with it, whatever the handler did. */
  nonDeterminism: NonDeterminismError | undefined;
  private readonly suspend: (suspension: Suspension) => void;
  private next = 0;
  private readonly seen = new Set<string>();
  private recorded: Promise<TaskStepRow[]> | undefined;

  constructor(
    private readonly r: Pick<LifecycleResources, 'store'> & Partial<LifecycleResources>,
    private readonly row: TaskRow,
    private readonly signal: AbortSignal,
  ) {
    let suspend: (suspension: Suspension) => void = () => {};
    this.suspended = new Promise((resolve) => {
      suspend = resolve;
    });
    this.suspend = suspend;
  }

  /** The handler's `ctx.step`, `ctx.sleep` and `ctx.sleepUntil`. */
  context(): StepContext {
    // Wait tokens (`tokens.ts`) and child tasks (`children.ts`) take their places in this run's
    // order like any step.
    const order: StepOrder = {
      take: (id) => this.take(id),
      peek: () => this.next,
      find: (id, seq) => this.find(id, seq),
      suspend: (suspension) => this.suspend(suspension),
    };
    const tokens = new TokenSteps(this.r, this.row, order);
    const children = new ChildSteps(this.r, this.row, order);
    return {
      step: (id, fn) => this.step(id, fn),
      sleep: (ms) => this.sleep(ms),
      sleepUntil: (until) => this.sleepUntil(until),
      createToken: (options) => tokens.create(options),
      waitForToken: (token) => tokens.wait(token),
      // One step per call.
      run: (name, input, options) => children.run(name, input, options) as never,
      runMany: (requests) => children.runMany(requests) as never,
    };
  }

  async step<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_STEP_ID_LENGTH)
      throw new InvalidStepError(`a step id is 1 to ${MAX_STEP_ID_LENGTH} characters`);
    if (id.startsWith(RESERVED_PREFIX))
      throw new InvalidStepError(`step "${id}": ids starting with ${RESERVED_PREFIX} are Tasker's own`);
    const seq = this.take(id);
    const recorded = await this.find(id, seq);
    if (recorded?.status === 'completed') return recorded.output as T;
    const startedAt = new Date();
    let value: T;
    try {
      value = await fn();
    } catch (error) {
      await this.r.store.steps
        .record({
          taskId: this.row.id,
          taskCreatedAt: this.row.createdAt,
          stepId: id,
          seq,
          status: 'failed',
          error: stepError(error, this.row.attempts),
          startedAt,
        })
        .catch(() => undefined); // the step's own error is what the attempt reports
      throw error;
    }
    const output = asJson(id, value);
    const written = await this.r.store.steps.record({
      taskId: this.row.id,
      taskCreatedAt: this.row.createdAt,
      stepId: id,
      seq,
      status: 'completed',
      output,
      startedAt,
    });
    // Another run of the task (a delivery repeated while this one ran) may have completed it first:
    // its result is the step's, for every run.
    return written.output as T;
  }

  sleep(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_SLEEP_MS)
      return Promise.reject(
        new InvalidStepError(`sleep takes 0 to ${MAX_SLEEP_MS} ms (30 days); got ${String(ms)}`),
      );
    return this.sleepUntil(new Date(Date.now() + ms));
  }

  async sleepUntil(until: Date): Promise<void> {
    if (!(until instanceof Date) || Number.isNaN(until.getTime()))
      throw new InvalidStepError('sleepUntil takes a valid Date');
    const seq = this.next;
    const id = sleepId(seq);
    this.take(id);
    const recorded = await this.find(id, seq);
    if (recorded?.status === 'completed') return;
    // A sleep recorded waiting keeps the end it was given first (the run that set it may be days ago).
    const recordedUntil = recorded?.status === 'waiting' ? untilOf(recorded) : undefined;
    const end = recordedUntil ?? until;
    if (!recordedUntil && end.getTime() - Date.now() > MAX_SLEEP_MS + IN_PROCESS_SLEEP_MS)
      throw new InvalidStepError(`sleepUntil ${end.toISOString()}: at most 30 days ahead`);
    const left = end.getTime() - Date.now();
    if (left > IN_PROCESS_SLEEP_MS) {
      const at = end.toISOString();
      this.suspend({
        stepId: id,
        seq,
        until: end,
        waitingFor: { kind: 'time', until: at },
        output: { until: at },
      });
      return new Promise<void>(() => {}); // never returns: the attempt ends here, and the task waits
    }
    const startedAt = recorded?.startedAt ?? new Date();
    if (left > 0) await abortableDelay(left, this.signal);
    await this.r.store.steps.record({
      taskId: this.row.id,
      taskCreatedAt: this.row.createdAt,
      stepId: id,
      seq,
      status: 'completed',
      output: { until: end.toISOString() },
      startedAt,
    });
  }

  /** The next place in the handler's order, for `id` (once per run). */
  private take(id: string): number {
    if (this.nonDeterminism) throw this.nonDeterminism;
    if (this.seen.has(id)) throw new InvalidStepError(`step "${id}" is used twice in one run`);
    this.seen.add(id);
    return this.next++;
  }

  /** The step recorded for `id` at `seq`, if any; a recorded order this run does not follow throws. */
  private async find(id: string, seq: number): Promise<TaskStepRow | undefined> {
    this.recorded ??= this.r.store.steps.list(this.row.id, this.row.createdAt);
    const steps = await this.recorded;
    const mine = steps.find((s) => s.stepId === id);
    if (mine && mine.status !== 'failed' && mine.seq !== seq)
      throw this.broken(`step "${id}" was step ${mine.seq + 1} of an earlier run; it is step ${seq + 1} now`);
    const other = steps.find((s) => s.seq === seq && s.stepId !== id && s.status !== 'failed');
    if (other)
      throw this.broken(`step ${seq + 1} was "${other.stepId}" in an earlier run; it is "${id}" now`);
    return mine;
  }

  private broken(message: string): NonDeterminismError {
    this.nonDeterminism = new NonDeterminismError(
      `${message}: the handler must reach its steps in the same order on every run`,
    );
    return this.nonDeterminism;
  }
}

/** A step's result as it is stored and given back: JSON (undefined: null). */
function asJson(id: string, value: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new InvalidStepError(
      `step "${id}" returned a result that is not JSON: ${(error as Error).message}`,
    );
  }
  const json: unknown = text === undefined ? null : JSON.parse(text);
  const unstorable = findUnstorable(json, ['output']);
  if (unstorable)
    throw new InvalidStepError(
      `step "${id}" returned a result that cannot be stored: ${unstorable.path.join('.')} ${unstorable.reason}`,
    );
  return json;
}

function untilOf(step: TaskStepRow): Date | undefined {
  const until = (step.output as { until?: unknown } | null)?.until;
  const date = typeof until === 'string' ? new Date(until) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

/** Resolves after `ms`, or rejects with the signal's reason when it fires first. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
