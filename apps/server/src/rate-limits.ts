import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { Authenticator } from './auth.ts';
import { pathOf, routeFacts, trpcCalls } from './routes.ts';

export interface RateLimitOptions {
  /** Requests (tRPC calls) per minute per key, and per client IP for everything without a valid key. */
  perMinute: number;
  /** Shared by every server through Redis; without it each server counts on its own, in memory. */
  redis?: unknown;
  /** Prefix of the counters in Redis (see keys.ts). */
  namespace: string;
  /** TRPC_MAX_BATCH: a larger batch is refused by tRPC (400) before any call runs, counted once. */
  maxBatch: number;
}

/** The hooks, in the order app.ts adds them around the key lookup. */
export interface RateLimitHooks {
  /** Before the key lookup: a client IP whose budget is spent gets no database query for a new key. */
  beforeLookUp: onRequestAsyncHookHandler;
  /** After it: one budget per key, one per client IP for requests without a valid key. */
  perCaller: onRequestAsyncHookHandler;
  /** After that: each further call of a tRPC batch counts as a request of its own. */
  perBatchCall: onRequestAsyncHookHandler;
}

const WINDOW_MS = 60_000;

/** The words of a 429 (the document's example uses them too). */
export function rateLimitMessage(max: number, after: string): string {
  return `Rate limit exceeded: ${max} requests per minute; retry in ${after}`;
}

/** The 429, thrown so that the error handler answers it in the one error shape. */
function tooMany(max: number, after: string): Error {
  return Object.assign(new Error(rateLimitMessage(max, after)), { statusCode: 429 });
}

/**
 * Rate limits with @fastify/rate-limit, one budget per API key and one per client IP, shared by
 * every server through Redis (per server, in memory, without Redis: a counter in PostgreSQL would
 * add a write to every request, and that mode is meant for one server or a few).
 *
 * - A request with a valid key counts against its key; any other (no key, a bad one, an open page)
 *   against its client IP.
 * - Before the key lookup, a request that would cost a database query (a key not seen valid lately)
 *   is refused when its IP has spent its budget: random well-formed keys cost one query each only
 *   until then (the Authenticator remembers refused keys, so repeating one costs none).
 * - Each call of a tRPC batch (`/trpc/a,b,c?batch=1`) counts: a batch buys no extra calls.
 */
export async function registerRateLimits(
  app: FastifyInstance,
  authenticator: Authenticator,
  options: RateLimitOptions,
): Promise<RateLimitHooks> {
  await app.register(rateLimit, {
    // Its hooks are added by app.ts, in the order above, rather than per route.
    global: false,
    max: options.perMinute,
    timeWindow: WINDOW_MS,
    // Before the lookup `request.auth` is not set yet: the client IP's counter.
    keyGenerator: (request) =>
      request.auth?.ok && request.auth.identity.keyId
        ? `key:${request.auth.identity.keyId}`
        : `ip:${request.ip}`,
    redis: options.redis,
    nameSpace: options.namespace,
    // Redis away: serve rather than refuse everyone.
    skipOnError: true,
    enableDraftSpec: true,
    // Unknown paths (404, 405) read no key and cost nothing: not counted, as before.
    allowList: (request) => request.is404 || !routeFacts(request.url).rateLimited,
    errorResponseBuilder: (_request, context) => tooMany(context.max, context.after),
  });
  const check = app.createRateLimit();

  const refuse = (
    reply: FastifyReply,
    state: { max: number; remaining: number; ttlInSeconds: number },
  ): never => {
    reply
      .header('ratelimit-limit', state.max)
      .header('ratelimit-remaining', state.remaining)
      .header('ratelimit-reset', state.ttlInSeconds)
      .header('retry-after', state.ttlInSeconds);
    throw tooMany(state.max, `${state.ttlInSeconds} seconds`);
  };

  return {
    beforeLookUp: async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.is404 || routeFacts(request.url).open) return;
      if (!authenticator.wouldLookUp(request.headers.authorization)) return;
      const state = await check(request, { increment: false });
      if (!state.isAllowed && state.remaining === 0 && state.ttl > 0) return refuse(reply, state);
    },
    perCaller: app.rateLimit(),
    perBatchCall: async (request: FastifyRequest, reply: FastifyReply) => {
      const calls = trpcCalls(pathOf(request.url))?.length ?? 1;
      if (calls < 2 || calls > options.maxBatch) return;
      const states = await Promise.all(Array.from({ length: calls - 1 }, () => check(request)));
      const over = states.find((state) => !state.isAllowed && state.isExceeded);
      if (over && !over.isAllowed) return refuse(reply, { ...over, remaining: 0 });
    },
  };
}
