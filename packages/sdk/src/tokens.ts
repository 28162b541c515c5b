import type { TRPCClient } from '@trpc/client';
import type { AppRouter, WireOutputs } from './types.ts';

/** A wait token as a completion answers it: its id, its task, `completed`, its timeout and completion time. */
export type WaitToken = WireOutputs['completeToken'];

/**
 * Wait tokens (`ctx.waitForToken` in a handler): `tokens.complete(token, output)` resumes the task
 * that waits for it with `output`. A key with `tasks:write`, of the task's tenant.
 */
export interface TokensApi {
  /**
   * Completes `token` (a task record's `waitingFor.token`) with `output` (any JSON, at most 64 KiB),
   * once. Unknown (or another tenant's): a TaskerError 404; completed already, past its timeout or
   * its task finished: 409, `code` TOKEN_ALREADY_COMPLETED, TOKEN_TIMED_OUT or TOKEN_TASK_FINISHED.
   */
  complete(token: string, output?: unknown): Promise<WaitToken>;
  /**
   * Completes a token by its callback URL (what the handler's `ctx.createToken` gave as `url`),
   * without a key: `url`'s last segment is the secret. Anything but a completion: 404.
   */
  completeByUrl(url: string, output?: unknown): Promise<WaitToken>;
}

/** `tasker.tokens`, over the router's token procedures. */
export function createTokensApi(
  trpc: TRPCClient<AppRouter>,
  call: <T>(promise: Promise<T>) => Promise<T>,
): TokensApi {
  return {
    complete: (token, output = null) => call(trpc.completeToken.mutate({ token, output })),
    completeByUrl: async (url, output = null) => {
      const secret = new URL(url).pathname.split('/').filter(Boolean).pop() ?? '';
      return call(trpc.completeTokenCallback.mutate({ secret, output }));
    },
  };
}
