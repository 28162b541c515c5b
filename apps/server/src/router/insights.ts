import { API_KEY_SCOPES } from '@tasker/db';
import { z } from 'zod';
import { identifiedProcedure, readProcedure, router } from '../trpc.ts';

/** Minutes the throughput covers. */
export const THROUGHPUT_MINUTES = 60;

const minuteCountsSchema = z
  .object({
    minute: z.iso.datetime({ offset: true }).describe("The minute's start"),
    completed: z.number().int().describe('Tasks that finished COMPLETED in this minute'),
    failed: z.number().int().describe('Tasks that finished FAILED in this minute (after their last attempt)'),
  })
  .meta({ id: 'MinuteCounts' });

/** Who is calling and how its tasks fare: what a dashboard shows beside the tasks themselves. */
export const insightsRouter = router({
  whoami: identifiedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/whoami',
        summary: 'The tenant and scopes of the calling API key',
        description:
          'Which tenant the key reaches and what it may do (tasks:write, tasks:read, admin: its tenant\'s keys, operator: the shared queue and every tenant\'s keys): a client shows only the actions the key can take. Any valid key may ask, whatever its scopes. With AUTH_MODE=disabled: tenant "default", every scope, authMode "disabled".',
        tags: ['keys'],
        successDescription: "The caller's tenant and scopes",
        errorResponses: {},
      },
    })
    .input(z.object({}))
    .output(
      z.object({
        tenant: z.string(),
        scopes: z.array(z.enum(API_KEY_SCOPES)),
        keyId: z.uuid().nullable().describe('The key id (not the key); null when AUTH_MODE=disabled'),
        authMode: z.enum(['required', 'disabled']),
      }),
    )
    .query(({ ctx }) => ({
      tenant: ctx.identity.tenantId,
      scopes: [...ctx.identity.scopes],
      keyId: ctx.identity.keyId,
      authMode: ctx.identity.keyId === null ? ('disabled' as const) : ('required' as const),
    })),

  getThroughput: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/stats/throughput',
        summary: "This tenant's completed and failed tasks per minute, over the last hour",
        description:
          'One entry per minute for the last 60 minutes (the current one last, still counting), zeros included: how many of ' +
          "the tenant's tasks finished COMPLETED and how many FAILED in it. Throughput is completed + failed; the failure rate is failed / (completed + failed).",
        tags: ['tasks'],
        successDescription: 'Sixty minutes, oldest first',
        errorResponses: {},
      },
    })
    .input(z.object({}))
    .output(z.object({ minutes: z.array(minuteCountsSchema) }))
    .query(async ({ ctx }) => ({
      minutes: await ctx.tasks.throughput(ctx.identity.tenantId, THROUGHPUT_MINUTES),
    })),
});
