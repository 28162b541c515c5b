import type { TokenCompletion, WaitTokenRow } from '@tasker/db';
import { hashTokenSecret, isTokenId } from '@tasker/db';
import { z } from 'zod';
import { NotFoundError } from './errors/not-found.ts';
import { PublicFailureError } from './errors/public-failure.ts';
import type { TaskLifecycle } from './lifecycle/index.ts';
import { isoDate } from './view.ts';

/** The most a completion's output may hold, as JSON text (UTF-8 bytes): a larger one is a 413. */
export const MAX_TOKEN_OUTPUT_BYTES = 64 * 1024;

/** A callback URL's secret as `newTokenSecret` makes it: 32 bytes, base64url (43 characters). */
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/** A wait token as a completion answers it. */
export const waitTokenSchema = z
  .object({
    id: z.uuid().describe("The token (as in the task record's waiting_for.token)"),
    taskId: z.uuid().describe('The task that waits for it'),
    status: z
      .enum(['waiting', 'completed', 'timed_out'])
      .describe('completed (by this call: its task resumes with the output); waiting; timed_out'),
    timeoutAt: isoDate.describe('When it times out (or timed out)'),
    completedAt: isoDate.nullable(),
  })
  .meta({ id: 'WaitToken' });
export type WaitTokenView = z.output<typeof waitTokenSchema>;

export function toWaitTokenView(row: WaitTokenRow): WaitTokenView {
  return {
    id: row.id,
    taskId: row.taskId,
    status: row.status,
    timeoutAt: row.timeoutAt.toISOString(),
    completedAt: row.completedAt?.toISOString() ?? null,
  };
}

/** Completing wait tokens (`ctx.waitForToken`) from outside: with a key, or by a callback URL. */
export interface TokensApi {
  /**
   * Completes `token` of `tenantId` with `output`, once. Unknown (or another tenant's, or not a
   * UUID): 404. Completed already: 409 TOKEN_ALREADY_COMPLETED; past its timeout: 409
   * TOKEN_TIMED_OUT; its task finished: 409 TOKEN_TASK_FINISHED. Output over
   * MAX_TOKEN_OUTPUT_BYTES: 413.
   */
  complete(tenantId: string, token: string, output: unknown): Promise<WaitTokenView>;
  /**
   * Completes the token whose callback URL carries `secret`, without a key. Anything but a
   * completion by this call (a secret never made, a token completed already or timed out, its
   * task finished) is a 404: a callback URL works once, until its timeout, and says nothing more.
   */
  completeByCallback(secret: string, output: unknown): Promise<WaitTokenView>;
}

function checkSize(output: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(output ?? null));
  if (bytes > MAX_TOKEN_OUTPUT_BYTES)
    throw new PublicFailureError({
      status: 413,
      message: `output: at most ${MAX_TOKEN_OUTPUT_BYTES} bytes of JSON; got ${bytes}`,
      issues: [{ path: 'output', message: `at most ${MAX_TOKEN_OUTPUT_BYTES} bytes of JSON` }],
    });
}

const conflict = (
  code: 'TOKEN_ALREADY_COMPLETED' | 'TOKEN_TIMED_OUT' | 'TOKEN_TASK_FINISHED',
  message: string,
) => new PublicFailureError({ status: 409, code, message });

/** What a completion answers, or throws. */
function answer(id: string, done: TokenCompletion): WaitTokenView {
  switch (done.outcome) {
    case 'completed':
      return toWaitTokenView(done.token);
    case 'not-found':
      throw new NotFoundError(`Token not found: ${id}`);
    case 'already-completed':
      throw conflict(
        'TOKEN_ALREADY_COMPLETED',
        `Token ${id} was completed already (a token is completed once)`,
      );
    case 'timed-out':
      throw conflict(
        'TOKEN_TIMED_OUT',
        `Token ${id} timed out at ${done.token.timeoutAt.toISOString()}: its task no longer waits for it`,
      );
    case 'task-finished':
      throw conflict('TOKEN_TASK_FINISHED', `Token ${id} belongs to a finished task: nothing waits for it`);
  }
}

export function createTokensApi(lifecycle: TaskLifecycle): TokensApi {
  const { tokens } = lifecycle.resources.store;
  return {
    async complete(tenantId, token, output) {
      if (!isTokenId(token)) throw new NotFoundError(`Token not found: ${token}`);
      checkSize(output);
      return answer(token, await tokens.complete({ id: token.toLowerCase(), tenantId }, output ?? null));
    },
    async completeByCallback(secret, output) {
      const unknown = new NotFoundError('Unknown callback URL (or one used already, or past its timeout)');
      if (!SECRET.test(secret)) throw unknown;
      checkSize(output);
      const done = await tokens.complete({ secretHash: hashTokenSecret(secret) }, output ?? null);
      if (done.outcome !== 'completed') throw unknown;
      return toWaitTokenView(done.token);
    },
  };
}
