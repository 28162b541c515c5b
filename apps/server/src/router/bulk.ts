import type { BulkAction } from '@tasker/db';
import { bulkCountSchema, bulkOperationSchema, EMPTY_FILTER } from '@tasker/engine';
import { z } from 'zod';
import { readProcedure, router, writeProcedure } from '../trpc.ts';
import { taskFilterShape, toTaskFilter } from './filter.ts';

/**
 * The body of POST /tasks/cancel and /tasks/retry: GET /tasks's filter (the same fields, the same
 * rules, from filter.ts), of which at least one must be given, and `dry_run`.
 */
const bulkInput = z.strictObject({
  filter: z
    .strictObject(taskFilterShape)
    .refine(
      (filter) => Object.values(filter).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0)),
      EMPTY_FILTER,
    )
    .describe(
      "Which of this tenant's tasks: GET /tasks's filter (status, name, created_after, created_before, input_contains, output_contains, tag, metadata_contains, parent_id), combined with AND; at least one",
    ),
  dry_run: z
    .boolean()
    .default(false)
    .describe('true: only count the tasks it would change (200, nothing touched), e.g. to confirm first'),
});

const bulkAnswer = z.union([bulkOperationSchema, bulkCountSchema]);

const WORDS: Record<BulkAction, { verb: string; statuses: string; what: string }> = {
  cancel: {
    verb: 'Cancel',
    statuses: 'PENDING, RUNNING and WAITING',
    what:
      'each as POST /tasks/{id}/cancel does: a PENDING or WAITING task ends CANCELLED at once, a RUNNING one has its cancel ' +
      'requested (its worker aborts it and ends it CANCELLED)',
  },
  retry: {
    verb: 'Retry',
    statuses: 'FAILED, CANCELLED and EXPIRED',
    what: 'each as POST /tasks/{id}/retry does: back to PENDING under its id, for a new round of attempts',
  },
};

/** POST /tasks/cancel or /tasks/retry. */
const bulkProcedure = (action: BulkAction) =>
  writeProcedure
    .meta({
      openapi: {
        method: 'POST',
        path: `/tasks/${action}`,
        summary: `${WORDS[action].verb} every task that matches a filter`,
        description:
          `Acts on every task of this tenant that matches the filter, among the ${WORDS[action].statuses} ones, ` +
          `created up to now: ${WORDS[action].what}. Answers 202 at once with a tracked operation ` +
          '(always, whatever the count): the workers go through the tasks in chunks, and GET /operations/{id} ' +
          'shows its progress (matched, done, status). With dry_run: 200 with the count it would change, nothing touched. ' +
          'An empty filter is refused (400): it would act on every task.',
        tags: ['tasks'],
        successStatus: 202,
        successDescription: 'The operation, recorded and running: follow it with GET /operations/{id}',
        otherSuccess: {
          status: 200,
          description: 'A dry run: how many tasks it would change now (nothing was touched)',
        },
        errorResponses: {
          400: 'No filter, or a malformed one (each issue names its field)',
        },
      },
    })
    .input(bulkInput)
    .output(bulkAnswer)
    .mutation(async ({ ctx, input }) => {
      const answer = await ctx.bulk.start(ctx.identity.tenantId, action, toTaskFilter(input.filter), {
        dryRun: input.dry_run,
        createdBy: ctx.identity.keyId,
      });
      if ('dryRun' in answer) ctx.rest.status = 200;
      return answer;
    });

/** Bulk cancel and retry by filter, as tracked operations, and their progress. */
export const bulkRouter = router({
  cancelTasks: bulkProcedure('cancel'),
  retryTasks: bulkProcedure('retry'),
  getOperation: readProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/operations/{id}',
        summary: 'A bulk operation and its progress',
        description:
          'A bulk cancel or retry of this tenant: its status (running, done, failed), how many tasks it matched when ' +
          'it was made and how many it changed so far.',
        tags: ['tasks'],
        successDescription: 'The operation',
        errorResponses: { 400: 'Malformed id (not a UUID)', 404: 'No operation of this tenant has this id' },
      },
    })
    .input(z.object({ id: z.uuid().describe('The id POST /tasks/cancel or /tasks/retry answered with') }))
    .output(bulkOperationSchema)
    .query(({ ctx, input }) => ctx.bulk.get(ctx.identity.tenantId, input.id)),
});
