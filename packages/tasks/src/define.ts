import { z } from 'zod';
import type { TaskName, TaskTypes } from './catalog.ts';
import type { LlmBounds, LlmClient } from './llm.ts';
import type { LlmPrices } from './llm-prices.ts';

/** Settings that task handlers may need. Parsed from the environment by `@tasker/engine`. */
export interface TaskConfig {
  openai: {
    apiKey?: string | undefined;
    baseURL?: string | undefined;
    model: string;
    /** Tried when the first provider fails for a retryable reason (`OPENAI_FALLBACK_*`); unset: the first's. */
    fallbackModel?: string | undefined;
    fallbackBaseURL?: string | undefined;
    fallbackApiKey?: string | undefined;
  };
  /** USD per million tokens by model (the repository's table under `LLM_PRICES_FILE` and `LLM_PRICES`); default the table. */
  llmPrices?: LlmPrices | undefined;
  /** Where clients reach the server (`PUBLIC_URL`): the origin of wait tokens' callback URLs. */
  publicUrl?: string | undefined;
}

/** What a handler may report while it runs. */
export interface TaskProgress {
  /** 0..100 */
  percent?: number;
  /** Partial output so far, e.g. the text a model has produced until now. */
  partial?: unknown;
  message?: string;
}

export interface TaskContext {
  taskId: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** Fired when the task times out, is cancelled, or the worker shuts down. Pass it on to I/O. */
  signal: AbortSignal;
  /** Reports progress; cheap to call often (the worker coalesces updates). */
  progress(update: TaskProgress): void;
  config: TaskConfig;
  /** Model calls (`ctx.llm.chat`): usage recorded, the type's `llm` bounds applied, provider errors sorted out. */
  llm: LlmClient;
  /**
   * Runs a child task and returns its output: submits a task of type `name` (its `parent_id` this
   * task, the same tenant, this task's concurrency key unless `options` gives one) and waits for
   * its end without holding a worker (WAITING, waiting_for `{kind: 'children'}`). The submission is
   * a step: a later run of this task (a retry, a worker that died) never submits it again, and reads
   * its output from the child's record. A child that ends FAILED, CANCELLED or EXPIRED throws a
   * ChildTaskError (its id, status and error), which the handler may catch. Bounded: a child at more
   * than CHILD_TASK_MAX_DEPTH levels below a top-level task is refused (ChildTaskLimitError).
   */
  run<N extends TaskName>(
    name: N,
    input: TaskTypes[N]['input'],
    options?: ChildTaskOptions,
  ): Promise<TaskTypes[N]['output']>;
  /**
   * Runs several child tasks at once (at most CHILD_TASK_MAX_FAN_OUT per call) and returns their
   * outputs in the order given, once every one has ended; if any failed, throws a ChildTasksError
   * carrying each failure (and the others' outputs). A step, like `run`.
   */
  runMany<const C extends readonly ChildTaskRequest[]>(
    children: C,
  ): Promise<{ -readonly [K in keyof C]: TaskTypes[C[K]['name']]['output'] }>;
  /**
   * A durable step: runs `fn` once for this task and records its result, so that a later run of the
   * task (a retry, a worker that died, a resume after `sleep`) returns the recorded result without
   * running `fn`. The result must be JSON (it is stored as JSON, and every run, the first included,
   * gets it back as parsed JSON); `undefined` is recorded as null. `id` names the step (1-200
   * characters), once per run. Every run must reach its steps in the same order (else the task fails
   * with a NonDeterminismError): let the order depend only on the input and on earlier steps'
   * results. Await each step before the next. A step that throws is recorded as failed, with its
   * error, and runs again on the next attempt.
   */
  step<T>(id: string, fn: () => Promise<T> | T): Promise<T>;
  /**
   * Suspends the task for `ms` milliseconds (at most 30 days) without holding a worker: the task
   * becomes WAITING, then PENDING again when the time has come, and its handler runs again from the
   * top, its finished steps answered from the record (the sleep is a step too: once over, it
   * returns at once). A sleep of less than a second is slept in the worker instead.
   */
  sleep(ms: number): Promise<void>;
  /** `sleep` until `until` (at most 30 days ahead; a time passed returns at once). */
  sleepUntil(until: Date): Promise<void>;
  /**
   * Makes a wait token (a step: a later run gets the same token back): `id`, which a key of the
   * task's tenant completes (`POST /tokens/{id}/complete`), and `url`, a callback URL that completes
   * it without a key (valid once). It times out after `timeoutMs` (1 s to 30 days). Hand either to
   * the outside world (in a step), then `waitForToken(token)`.
   */
  createToken(options: WaitTokenOptions): Promise<WaitToken>;
  /**
   * Suspends the task until the token is completed, without holding a worker (WAITING, waiting_for
   * `{kind: 'token', token, until}`), and returns the completion's `output` (JSON). Past the
   * token's timeout it throws a WaitTokenTimeoutError, which the handler may catch. Given
   * `{timeoutMs}` instead of a token, it makes one first (`createToken`): its id is then in the
   * task record's waiting_for, for its tenant. A wait is a step: once over, a later run gets the
   * same answer at once.
   */
  waitForToken<T = unknown>(token: WaitToken | WaitTokenOptions): Promise<T>;
}

/** How long a wait token stays open. */
export interface WaitTokenOptions {
  /** 1,000 ms to 30 days. */
  timeoutMs: number;
}

/** A wait token, as `ctx.createToken` makes it. */
export interface WaitToken {
  /** Complete it with `POST /tokens/{id}/complete {output}` (scope tasks:write, the task's tenant). */
  id: string;
  /** `POST {url} {output}` completes it without a key, once, until `timeoutAt` (PUBLIC_URL's origin). */
  url: string;
  /** ISO 8601: when it times out. */
  timeoutAt: string;
}

/** One child task of `ctx.runMany`: its type, its parameters, its options. */
export type ChildTaskRequest = {
  [N in TaskName]: { name: N; input: TaskTypes[N]['input']; options?: ChildTaskOptions };
}[TaskName];

/** Options of a child task (`ctx.run`, `ctx.runMany`); unset: the type's defaults, the parent's concurrency key. */
export interface ChildTaskOptions {
  /** Its concurrency key; default: the parent's. */
  concurrencyKey?: string;
  /** 0..100, higher first (within the tenant). */
  priority?: number;
  /** Total attempts, the first included (1..100). */
  maxAttempts?: number;
  /** An attempt running longer is aborted (1 ms to 24 h). */
  timeoutMs?: number;
}

export interface RetryPolicy {
  /** Total attempts, the first included. */
  attempts: number;
  backoff: { type: 'exponential' | 'fixed'; delayMs: number };
}

/**
 * A task type's default limits (each optional: unset, no limit), which an operator may change at
 * runtime (`PUT /task-types/{name}/limits`; a value set there wins). Enforced across every worker.
 */
export interface TaskLimits {
  /** At most this many tasks of the type RUNNING at once. */
  maxRunning?: number;
  /** A submission beyond this many tasks of the type PENDING is refused (429 QUEUE_FULL). */
  maxQueued?: number;
  /** Starts of the type spread to at most this many per minute. */
  startsPerMinute?: number;
  /** At most this many tasks of the type RUNNING at once per concurrency key. */
  maxRunningPerKey?: number;
}

export interface TaskDefinition<
  Name extends string = string,
  Input extends z.ZodObject = z.ZodObject,
  Output extends z.ZodType = z.ZodType,
> {
  name: Name;
  description: string;
  /** Schema of `task_parameters`. */
  input: Input;
  /** Schema of the result. The worker checks every result against it. */
  output: Output;
  retry: RetryPolicy;
  /** An attempt running longer is aborted and counts as failed. */
  timeoutMs: number;
  /**
   * How long a task of this type may wait to start (counted from its run_after, else its
   * submission) before it ends EXPIRED without running; a submission's `ttl_ms` overrides it.
   * Undefined: it waits for ever.
   */
  ttlMs?: number;
  /** Default limits of the type (see TaskLimits); unset: none. */
  limits?: TaskLimits;
  /** The type calls a model (`ctx.llm`): its bounds (see LlmBounds). */
  llm?: LlmBounds;
  /** Example parameters, shown in the API documentation. */
  example?: z.input<Input>;
  /** The result of `example`, shown in the API documentation (a task record, COMPLETED). */
  exampleOutput?: z.output<Output>;
  /** Why this task cannot run with this configuration (checked at submission), or undefined. */
  unavailable?(config: TaskConfig): string | undefined;
  run(input: z.output<Input>, ctx: TaskContext): Promise<z.input<Output>> | z.input<Output>;
}

export interface TaskOptions<Name extends string, Input extends z.ZodObject, Output extends z.ZodType>
  extends Omit<TaskDefinition<Name, Input, Output>, 'retry' | 'timeoutMs'> {
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number;
}

/** The largest value of any limit, here and at runtime (the API refuses more). */
export const MAX_LIMIT = 1_000_000;

export const DEFAULT_RETRY: RetryPolicy = { attempts: 3, backoff: { type: 'exponential', delayMs: 1000 } };
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

/**
 * Declares a task type: its name, the schemas of its parameters and result, and its handler.
 * Register the result in `catalog.ts` and every caller, server and worker knows it.
 */
export function defineTask<const Name extends string, Input extends z.ZodObject, Output extends z.ZodType>(
  options: TaskOptions<Name, Input, Output>,
): TaskDefinition<Name, Input, Output> {
  for (const [field, value] of Object.entries(options.limits ?? {})) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0 && value <= MAX_LIMIT))
      throw new Error(
        `defineTask ${options.name}: limits.${field} must be an integer from 0 to ${MAX_LIMIT}`,
      );
  }
  const { llm } = options;
  return {
    ...options,
    input: llm ? boundPrompt(options.name, options.input, llm) : options.input,
    retry: { ...DEFAULT_RETRY, ...options.retry },
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // A type that calls a model is refused at submission (503) while the server has no key.
    unavailable:
      options.unavailable ??
      (llm
        ? (config) =>
            config.openai.apiKey
              ? undefined
              : `${options.name} is not available: OPENAI_API_KEY is not set on this server`
        : undefined),
  };
}

/**
 * The input schema with its prompt field bounded by `llm.maxPromptChars` (a string's `.max`), so
 * that every door refuses a longer prompt with a 400 naming the field, and the OpenAPI document
 * shows the bound (`maxLength`).
 */
function boundPrompt<Input extends z.ZodObject>(name: string, input: Input, llm: LlmBounds): Input {
  const { maxPromptChars, promptField = 'prompt', maxTokens } = llm;
  for (const [bound, value] of Object.entries({ maxPromptChars, maxTokens })) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1))
      throw new Error(`defineTask ${name}: llm.${bound} must be a positive integer`);
  }
  if (maxPromptChars === undefined) return input;
  const field = input.shape[promptField];
  if (!(field instanceof z.ZodString))
    throw new Error(`defineTask ${name}: llm.promptField "${promptField}" must name a string field of input`);
  const bounded = field.max(maxPromptChars, {
    error: `at most ${maxPromptChars} characters (the prompt limit of ${name})`,
  });
  // safeExtend keeps the schema's own refinements (extend refuses to replace a key under them).
  return input.safeExtend({ [promptField]: bounded }) as unknown as Input;
}

/** Thrown by a handler for a failure that another attempt cannot fix (bad input found late, 4xx). */
export class NonRetryableError extends Error {
  override name = 'NonRetryableError';
}
