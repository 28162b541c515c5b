import { randomBytes, randomUUID } from 'node:crypto';
import { hashTokenSecret, isTokenId, type TaskRow } from '@tasker/db';
import {
  InvalidStepError,
  MAX_TOKEN_TIMEOUT_MS,
  MIN_TOKEN_TIMEOUT_MS,
  type WaitToken,
  type WaitTokenOptions,
  WaitTokenTimeoutError,
} from '@tasker/tasks';
import { TOKEN_STEP_PREFIX } from '../view.ts';
import type { LifecycleResources } from './resources.ts';
import type { StepOrder } from './steps.ts';

/** Bytes of randomness in a callback URL's secret (base64url: 43 characters). */
export const TOKEN_SECRET_BYTES = 32;

/** The path of a callback URL, below PUBLIC_URL: `/token-callbacks/{secret}`. */
export const CALLBACK_PATH = '/token-callbacks/';

/** Where clients reach the server when PUBLIC_URL is not given to the worker (the server's default). */
const FALLBACK_PUBLIC_URL = 'http://127.0.0.1:5000';

/** The step ids of a token's wait: its place in the handler's order. */
const waitStepId = (seq: number) => `$token-wait:${seq}`;

/** A callback URL's secret: 32 random bytes, base64url. */
export function newTokenSecret(): string {
  return randomBytes(TOKEN_SECRET_BYTES).toString('base64url');
}

/** `{timeoutMs}` checked: 1 s to 30 days, a whole number of ms. */
function timeoutOf(options: unknown): number {
  const timeoutMs = (options as { timeoutMs?: unknown } | null)?.timeoutMs;
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isInteger(timeoutMs) ||
    timeoutMs < MIN_TOKEN_TIMEOUT_MS ||
    timeoutMs > MAX_TOKEN_TIMEOUT_MS
  )
    throw new InvalidStepError(
      `a wait token's timeoutMs is a whole number from ${MIN_TOKEN_TIMEOUT_MS} to ${MAX_TOKEN_TIMEOUT_MS} (30 days); got ${String(timeoutMs)}`,
    );
  return timeoutMs;
}

const isToken = (value: unknown): value is WaitToken =>
  typeof (value as { id?: unknown } | null)?.id === 'string';

/**
 * `ctx.createToken` and `ctx.waitForToken` of one run of a task's handler, on the StepRunner's
 * order (each is a step of the handler's order, so that a later run meets them at the same place).
 *
 * - createToken (`$token:N`): makes the token and records the step in one statement; a later run
 *   gets the recorded token back (its callback URL too: the secret's hash alone is in wait_tokens).
 * - waitForToken (`$token-wait:N`): the token completed → its output (recorded as the step's
 *   result); past its timeout → the token is marked timed out, the step recorded failed, and a
 *   WaitTokenTimeoutError thrown (every later run finds the token timed out and throws again);
 *   otherwise the run suspends: WAITING until the token's timeout, woken earlier by a completion.
 */
export class TokenSteps {
  constructor(
    private readonly r: Pick<LifecycleResources, 'store'> & Partial<Pick<LifecycleResources, 'config'>>,
    private readonly row: TaskRow,
    private readonly order: StepOrder,
  ) {}

  async create(options: WaitTokenOptions): Promise<WaitToken> {
    const timeoutMs = timeoutOf(options);
    const id = `${TOKEN_STEP_PREFIX}${this.order.peek()}`;
    const seq = this.order.take(id);
    const recorded = await this.order.find(id, seq);
    if (recorded?.status === 'completed') return recorded.output as WaitToken;
    const secret = newTokenSecret();
    const base = (this.r.config?.publicUrl ?? FALLBACK_PUBLIC_URL).replace(/\/+$/, '');
    const timeoutAt = new Date(Date.now() + timeoutMs);
    const token: WaitToken = {
      id: randomUUID(),
      url: `${base}${CALLBACK_PATH}${secret}`,
      timeoutAt: timeoutAt.toISOString(),
    };
    // Another run of the task (a delivery repeated meanwhile) may have made this step's token first.
    return (await this.r.store.tokens.create({
      id: token.id,
      tenantId: this.row.tenantId,
      taskId: this.row.id,
      taskCreatedAt: this.row.createdAt,
      stepId: id,
      seq,
      secretHash: hashTokenSecret(secret),
      timeoutAt,
      result: token,
      startedAt: new Date(),
    })) as WaitToken;
  }

  async wait<T>(target: WaitToken | WaitTokenOptions): Promise<T> {
    const token = isToken(target) ? target : await this.create(target);
    const seq = this.order.peek();
    const id = waitStepId(seq);
    this.order.take(id);
    const recorded = await this.order.find(id, seq);
    if (recorded?.status === 'completed') return recorded.output as T;
    const startedAt = recorded?.startedAt ?? new Date();
    // Not a token's form: no token of this task (refused here, not by a failing cast). A database
    // error is left to fail the attempt, which is retried, instead of failing the task for good.
    const row = isTokenId(token.id) ? await this.r.store.tokens.settle(token.id) : undefined;
    if (!row || row.taskId !== this.row.id)
      throw new InvalidStepError(`waitForToken: ${String(token.id)} is no wait token of this task`);
    if (row.status === 'completed') {
      const written = await this.r.store.steps.record({
        taskId: this.row.id,
        taskCreatedAt: this.row.createdAt,
        stepId: id,
        seq,
        status: 'completed',
        output: row.output,
        startedAt,
      });
      return written.output as T;
    }
    const timeoutAt = row.timeoutAt.toISOString();
    if (row.status === 'timed_out') {
      const error = new WaitTokenTimeoutError(row.id, timeoutAt);
      await this.r.store.steps.record({
        taskId: this.row.id,
        taskCreatedAt: this.row.createdAt,
        stepId: id,
        seq,
        status: 'failed',
        error: {
          message: error.message,
          name: error.name,
          code: error.code,
          attempt: this.row.attempts,
          at: new Date().toISOString(),
        },
        startedAt,
      });
      throw error;
    }
    this.order.suspend({
      stepId: id,
      seq,
      until: row.timeoutAt,
      waitingFor: { kind: 'token', token: row.id, until: timeoutAt },
      output: { token: row.id, until: timeoutAt },
    });
    return new Promise<T>(() => {}); // never returns: the attempt ends here, and the task waits
  }
}
