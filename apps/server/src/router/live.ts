import { taskStatusSchema } from '@tasker/engine';
import { TRPCError, tracked } from '@trpc/server';
import { z } from 'zod';
import { resumeAfter } from '../live.ts';
import { readProcedure, router } from '../trpc.ts';
import { taskUuid } from './schemas.ts';

/** Subscriptions (served over SSE at /trpc): one task's states, or every task's changes. */
export const liveRouter = router({
  /**
   * One task, live: its current state at once, then every change, ending after the terminal state.
   * Each event's id is the task's version; reconnecting with it resumes without going backwards.
   */
  onTaskUpdate: readProcedure
    .input(z.object({ id: taskUuid, lastEventId: z.string().nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const updates = await ctx.live.watch(
        ctx.identity.tenantId,
        input.id,
        resumeAfter(input.lastEventId),
        signal ?? new AbortController().signal,
      );
      if (!updates) throw new TRPCError({ code: 'NOT_FOUND', message: 'Task not found' });
      for await (const event of updates) yield tracked(String(event.version), event);
    }),

  /** Every task's changes as they happen (for dashboards), optionally only some task types or statuses. */
  onTasksUpdate: readProcedure
    .input(
      z.object({ names: z.array(z.string()).optional(), statuses: z.array(taskStatusSchema).optional() }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      const names = input.names && new Set(input.names);
      const statuses = input.statuses && new Set(input.statuses);
      yield* ctx.live.watchAll(
        ctx.identity.tenantId,
        signal ?? new AbortController().signal,
        (event) => (!names || names.has(event.name)) && (!statuses || statuses.has(event.status)),
      );
    }),
});
