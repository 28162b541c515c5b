import { taskStatusSchema } from '@tasker/engine';
import { TRPCError, tracked } from '@trpc/server';
import { z } from 'zod';
import type { Identity } from '../auth.ts';
import { resumeAfter } from '../live.ts';
import { DRAINED, type StreamLease } from '../streams.ts';
import { type Context, readProcedure, router } from '../trpc.ts';
import { taskUuid } from './schemas.ts';

/**
 * A slot for one subscription among the caller's streams (TOO_MANY_REQUESTS past
 * MAX_STREAMS_PER_KEY), ended with its key, and dropped if its client stops reading. While the
 * server closes, none: the subscription ends at once as a drained one (`endedBy`), before any
 * PostgreSQL read of its task, and its client resumes on another server.
 */
function openStream(ctx: Context & { identity: Identity }, signal: AbortSignal | undefined): StreamLease {
  if (ctx.streams.draining) throw new DOMException(DRAINED.message, 'AbortError');
  const lease = ctx.streams.open(
    { identity: ctx.identity, ip: ctx.client.ip, drop: ctx.client.drop },
    signal ?? new AbortController().signal,
  );
  if ('refusal' in lease) throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: lease.refusal.message });
  return lease;
}

/**
 * After the stream's events: the server ended it. A revoked or expired key: an UNAUTHORIZED error
 * event. The server shuts down: an AbortError, which tRPC answers by ending the stream with no
 * event at all (neither `return`, which its client takes for the subscription's end, nor an error):
 * the client's EventSource reconnects by itself and the subscription resumes from its last event
 * id (drain.ts adds the reconnect hints).
 */
function endedBy(lease: StreamLease): void {
  const ended = lease.ended();
  if (ended?.status === 401) throw new TRPCError({ code: 'UNAUTHORIZED', message: ended.message });
  if (ended === DRAINED) throw new DOMException(ended.message, 'AbortError');
}

/** Subscriptions (served over SSE at /trpc): one task's states, or every task's changes. */
export const liveRouter = router({
  /**
   * One task, live: its current state at once, then every change, ending after the terminal state.
   * Each event's id is the task's version; reconnecting with it resumes without going backwards.
   */
  onTaskUpdate: readProcedure
    .input(z.object({ id: taskUuid, lastEventId: z.string().nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const lease = openStream(ctx, signal);
      try {
        const updates = await ctx.live.watch(
          ctx.identity.tenantId,
          input.id,
          resumeAfter(input.lastEventId),
          {
            signal: lease.signal,
            onOverflow: lease.overflow,
          },
        );
        if (!updates) throw new TRPCError({ code: 'NOT_FOUND', message: 'Task not found' });
        for await (const event of updates) yield tracked(String(event.version), event);
        endedBy(lease);
      } finally {
        lease.release();
      }
    }),

  /**
   * One task's activity, live: as onTaskUpdate (`{type: "state", task}`), with its durable steps
   * (`{type: "step", step}`): those recorded so far before its current state, then each step as it
   * is written, in commit order. Every event's id is the version of the last state sent, so that
   * reconnecting resumes after it; steps are sent again on a reconnect (an event for a step id
   * replaces the earlier one).
   */
  onTaskActivity: readProcedure
    .input(z.object({ id: taskUuid, lastEventId: z.string().nullish() }))
    .subscription(async function* ({ ctx, input, signal }) {
      const lease = openStream(ctx, signal);
      try {
        let last = resumeAfter(input.lastEventId);
        const activity = await ctx.live.activity(ctx.identity.tenantId, input.id, last, {
          signal: lease.signal,
          onOverflow: lease.overflow,
        });
        if (!activity) throw new TRPCError({ code: 'NOT_FOUND', message: 'Task not found' });
        for await (const event of activity) {
          if (event.type === 'state') last = event.task.version;
          yield tracked(String(last), event);
        }
        endedBy(lease);
      } finally {
        lease.release();
      }
    }),

  /** Every task's changes as they happen (for dashboards), optionally only some task types or statuses. */
  onTasksUpdate: readProcedure
    .input(
      z.object({ names: z.array(z.string()).optional(), statuses: z.array(taskStatusSchema).optional() }),
    )
    .subscription(async function* ({ ctx, input, signal }) {
      const names = input.names && new Set(input.names);
      const statuses = input.statuses && new Set(input.statuses);
      const lease = openStream(ctx, signal);
      try {
        yield* ctx.live.watchAll(
          ctx.identity.tenantId,
          { signal: lease.signal, onOverflow: lease.overflow },
          (event) => (!names || names.has(event.name)) && (!statuses || statuses.has(event.status)),
        );
        endedBy(lease);
      } finally {
        lease.release();
      }
    }),
});
