import type { Suspension, TaskRow } from '@tasker/db';
import { findUnstorable, type StepRunner } from '@tasker/engine';
import {
  BudgetExceededError,
  createLlm,
  type LlmCache,
  type LlmCallUsage,
  type NonDeterminismError,
  NonRetryableError,
  type TaskConfig,
  type TaskDefinition,
  type TaskProgress,
} from '@tasker/tasks';

/** An attempt that ran longer than its task's timeout. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** What one run of a handler came to: only the handler's outcome, nothing recorded yet. */
export type AttemptOutcome =
  | { kind: 'completed'; output: unknown }
  /** The handler returned something its task's output schema refuses: another attempt won't help. */
  | { kind: 'invalid-output'; error: Error }
  /** The worker's signal fired (a cancel, or shutdown): `reason` says which. */
  | { kind: 'aborted'; reason: unknown }
  | {
      kind: 'failed';
      error: unknown;
      code: 'TIMEOUT' | 'HANDLER_ERROR' | 'NON_DETERMINISM';
      retryable: boolean;
    }
  /** The handler slept (ctx.sleep): the task waits, from `suspension`, holding no worker. */
  | { kind: 'waiting'; suspension: Suspension }
  /** A model call found the tenant over an LLM budget and did not start: the task is held, uncounted. */
  | { kind: 'held'; error: BudgetExceededError };

/** The value the race of an attempt ends with when its handler suspended itself. */
const SUSPENDED = Symbol('suspended');

/** Why a suspended attempt's signal fires: the attempt is over, its stray work may stop. */
export class SuspendedError extends Error {
  override name = 'SuspendedError';
}

export interface AttemptContext {
  /** BullMQ's signal for this job: fired by `worker.cancelJob` (cancel, shutdown). */
  signal: AbortSignal | undefined;
  progress(update: TaskProgress): void;
  config: TaskConfig;
  /** The durable steps of this run (`ctx.step`, `ctx.sleep`), given the attempt's signal. */
  steps(signal: AbortSignal): StepRunner;
  /** Records a model call's usage (`ctx.llm`) durably; the handler's call waits for it. */
  recordUsage(usage: LlmCallUsage): Promise<void>;
  /** Throws BudgetExceededError when the tenant is over an LLM budget (`ctx.llm`, before each call). */
  checkBudget?: () => Promise<void>;
  /** The tenant's identical-prompt cache (`ctx.llm`), used when the task's cache TTL is above 0. */
  llmCache?: LlmCache;
}

/**
 * Runs the handler once, with its timeout, and turns whatever happens into an outcome. A handler
 * that ignores its AbortSignal is not waited for: the outcome is decided when the signal fires.
 * Nothing stays behind when it returns (the timer is cleared, listeners are removed), so a worker
 * that runs millions of attempts keeps none of them in memory.
 */
export async function runAttempt(
  definition: TaskDefinition,
  row: TaskRow,
  { signal, progress, config, recordUsage, checkBudget, llmCache, steps: openSteps }: AttemptContext,
): Promise<AttemptOutcome> {
  const timeoutMs = row.timeoutMs ?? definition.timeoutMs;
  const attempt = new AbortController();
  const timer = setTimeout(
    () => attempt.abort(new TimeoutError(`timed out after ${timeoutMs} ms`)),
    timeoutMs,
  );
  const forward = () => attempt.abort(signal?.reason);
  if (signal?.aborted) forward();
  else signal?.addEventListener('abort', forward, { once: true });
  const steps = openSteps(attempt.signal);
  const suspended = steps.suspended.then(() => SUSPENDED);
  let stopWaiting: (() => void) | undefined;
  const aborted = new Promise<'aborted'>((resolve) => {
    stopWaiting = () => resolve('aborted');
    if (attempt.signal.aborted) resolve('aborted');
    else attempt.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });
  try {
    const raw = await Promise.race([
      (async () =>
        definition.run(row.input as never, {
          taskId: row.id,
          attempt: row.attempts,
          signal: attempt.signal,
          progress,
          config,
          ...steps.context(),
          llm: createLlm({
            config,
            signal: attempt.signal,
            progress,
            bounds: definition.llm,
            record: recordUsage,
            checkBudget,
            cache: llmCache,
            // The submission's cache_ttl_ms (0: off), else the type's opt-in.
            cacheTtlMs: row.llmCacheTtlMs ?? definition.llm?.cacheTtlMs,
          }),
        }))(),
      aborted,
      suspended,
    ]);
    if (raw === SUSPENDED) {
      attempt.abort(new SuspendedError('the handler slept: the attempt is over'));
      return { kind: 'waiting', suspension: await steps.suspended };
    }
    if (attempt.signal.aborted) return abortOutcome(attempt.signal.reason);
    // A handler that caught a NonDeterminismError and went on: its run is not trusted.
    if (steps.nonDeterminism) return nonDeterministic(steps.nonDeterminism);
    const output = definition.output.safeParse(raw);
    if (!output.success) {
      return {
        kind: 'invalid-output',
        error: new Error(`handler returned an invalid result: ${output.error.message}`),
      };
    }
    const unstorable = findUnstorable(output.data, ['output']);
    if (unstorable) {
      return {
        kind: 'invalid-output',
        error: new Error(
          `handler returned a result that cannot be stored: ${unstorable.path.join('.')} ${unstorable.reason}`,
        ),
      };
    }
    return { kind: 'completed', output: output.data };
  } catch (error) {
    if (attempt.signal.aborted) return abortOutcome(attempt.signal.reason);
    if (steps.nonDeterminism) return nonDeterministic(steps.nonDeterminism);
    if (error instanceof BudgetExceededError) return { kind: 'held', error };
    return { kind: 'failed', error, code: 'HANDLER_ERROR', retryable: !(error instanceof NonRetryableError) };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', forward);
    stopWaiting?.();
  }
}

/** A run that left the order of its recorded steps fails for good: another attempt would too. */
function nonDeterministic(error: NonDeterminismError): AttemptOutcome {
  return { kind: 'failed', error, code: 'NON_DETERMINISM', retryable: false };
}

function abortOutcome(reason: unknown): AttemptOutcome {
  if (reason instanceof TimeoutError)
    return { kind: 'failed', error: reason, code: 'TIMEOUT', retryable: true };
  return { kind: 'aborted', reason };
}
