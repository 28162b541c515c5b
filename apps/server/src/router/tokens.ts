import { MAX_TOKEN_OUTPUT_BYTES, waitTokenSchema } from '@tasker/engine';
import { z } from 'zod';
import { openProcedure, router, writeProcedure } from '../trpc.ts';

/** What a completion carries: the output the waiting handler's `ctx.waitForToken` returns. */
const output = z
  .unknown()
  .optional()
  .describe(
    `What the waiting handler's ctx.waitForToken returns: any JSON, at most ${MAX_TOKEN_OUTPUT_BYTES} bytes (413 beyond); omitted: null`,
  );

const completion = (how: string) =>
  `${how} The task that waits for it goes back to PENDING and its handler resumes: ctx.waitForToken returns the output. ` +
  'A token is completed once, before its timeout, while its task is unfinished.';

/**
 * Wait tokens (`ctx.createToken`, `ctx.waitForToken`): completed from outside, with a key of the
 * task's tenant (`completeToken`), or by the callback URL the handler was given, without a key
 * (`completeTokenCallback`: the URL's secret is the credential).
 */
export const tokensRouter = router({
  completeToken: writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/tokens/{token}/complete',
        summary: 'Complete a wait token',
        description: completion(
          "Completes a wait token of the caller's tenant (its id: a task record's waiting_for.token, or what the handler's ctx.createToken made) with {output}.",
        ),
        tags: ['tasks'],
        successDescription: 'The token, completed',
        errorResponses: {
          404: 'No wait token of this tenant has this id',
          409: 'The token cannot be completed: TOKEN_ALREADY_COMPLETED (a second completion), TOKEN_TIMED_OUT (its timeout passed), TOKEN_TASK_FINISHED (its task ended, e.g. cancelled while it waited)',
          413: `The output is larger than ${MAX_TOKEN_OUTPUT_BYTES} bytes of JSON (or the body than BODY_LIMIT_BYTES)`,
        },
      },
    })
    .input(
      z.object({
        token: z.string().min(1).max(100).describe('The wait token: a UUID'),
        output,
      }),
    )
    .output(waitTokenSchema)
    .mutation(({ ctx, input }) => ctx.tokens.complete(ctx.identity.tenantId, input.token, input.output)),

  completeTokenCallback: openProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: '/token-callbacks/{secret}',
        summary: 'Complete a wait token by its callback URL (no key)',
        description: completion(
          "The callback URL a handler's ctx.createToken made (its url: PUBLIC_URL + /token-callbacks/ + a secret of 32 random bytes, stored hashed), POSTed with {output}. Needs no API key: the secret is the credential. It works once, until the token's timeout; anything else (a secret never made, used already, past its timeout, its task finished) is a 404 that says no more.",
        ),
        tags: ['tasks'],
        successDescription: 'The token, completed',
        errorResponses: {
          404: 'No open wait token has this callback URL (never made, used already, past its timeout, or its task finished)',
          413: `The output is larger than ${MAX_TOKEN_OUTPUT_BYTES} bytes of JSON (or the body than BODY_LIMIT_BYTES)`,
        },
      },
    })
    .input(
      z.object({
        secret: z.string().min(1).max(100).describe("The callback URL's secret"),
        output,
      }),
    )
    .output(waitTokenSchema)
    .mutation(({ ctx, input }) => ctx.tokens.completeByCallback(input.secret, input.output)),
});
