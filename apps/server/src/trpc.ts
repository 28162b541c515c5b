/**
 * The tRPC setup, in one place (as create-t3-turbo's `packages/api/src/trpc.ts`):
 * 1. the context every procedure receives, and its factory;
 * 2. initialisation: error shape, SSE keep-alive, procedure metadata (how it is served over REST);
 * 3. the procedure builders the routers in `router/*.ts` use.
 */

import type { ApiKeyScope } from '@tasker/db';
import {
  type BulkApi,
  errorCodeOf,
  findUnstorable,
  publicFailureOf,
  type ScheduleApi,
  type TaskApi,
  type TokensApi,
} from '@tasker/engine';
import { initTRPC, TRPCError } from '@trpc/server';
import { type Auth, authorize } from './auth.ts';
import { PublicFailureError, toPublicError, trpcCodeOf } from './errors.ts';
import type { KeysApi } from './keys-api.ts';
import type { LimitsApi } from './limits-api.ts';
import type { TaskWatcher } from './live.ts';
import type { StreamGate } from './streams.ts';
import type { UsageApi } from './usage-api.ts';
import type { WebhooksApi } from './webhooks-api.ts';

// 1. CONTEXT

/** What the procedures work with, whoever calls. */
export interface Services {
  tasks: TaskApi;
  /** Bulk cancel and retry by filter: recorded here, run by the workers. */
  bulk: BulkApi;
  live: TaskWatcher;
  keys: KeysApi;
  /** Limits set at runtime: a tenant's (admin, operator), a task type's (operator). */
  limits: LimitsApi;
  /** Model usage reports (the ledger of calls): the caller's tenant's, an operator's of any. */
  usage: UsageApi;
  /** Schedules, per tenant: create (or upsert by key), list, get, change, delete. */
  schedules: ScheduleApi;
  /** Slots of open streams per key (or client IP), and their end with their key. */
  streams: StreamGate;
  /** A tenant's completion webhooks and their deliveries (admin, operator). */
  webhooks: WebhooksApi;
  /** Wait tokens (`ctx.waitForToken`): completed with a key, or by a callback URL without one. */
  tokens: TokensApi;
}

/**
 * What procedures may use: the services, and who is calling (`auth`, read from the request's key
 * by the Authenticator before any route runs). The context type is inferred from this factory. It
 * names interfaces, not the classes behind them, because the router's type is published inside the
 * SDK and must not drag BullMQ or drizzle along.
 */
export function createContextFactory(services: Services) {
  return ({ req }: { req: { auth: Auth; ip: string; raw: { socket: { destroy(): void } } } }) => ({
    ...services,
    auth: req.auth,
    /** The client's address, and how to cut its connection (a stream whose client stopped reading). */
    client: { ip: req.ip, drop: () => req.raw.socket.destroy() },
    /**
     * What the REST door answers besides the body: a procedure may set another success status than
     * its route's (POST /tasks: 200 when an existing task answers). tRPC's own door ignores it.
     */
    rest: { status: undefined as 200 | 201 | 202 | undefined },
  });
}

export type Context = ReturnType<ReturnType<typeof createContextFactory>>;

// 2. INITIALISATION

/** Procedure metadata: how a procedure is exposed over REST (read by the OpenAPI generator). */
export interface RestMeta {
  [key: string]: unknown;
  openapi?: {
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
    path: `/${string}`;
    summary?: string;
    description?: string;
    tags?: string[];
    enabled?: boolean;
    /** What a 200 answer is, in words. */
    successDescription?: string;
    /**
     * The statuses this route answers for its own reasons (400, 404, 409, a 503 of its own), each
     * with words that fit it. Those every route shares (401, 403, 413, 415, 429, 503) are added by
     * openapi.ts.
     */
    errorResponses?: Record<number, string>;
    /** The status of a success (read by rest.ts and openapi.ts): 200 unless it creates (201) or accepts work for later (202). */
    successStatus?: 200 | 201 | 202;
    /**
     * Another success status the procedure may answer with (setting `ctx.rest.status`), with the
     * same body, and what it means (POST /tasks: 200 when an existing task answers instead of a new one).
     */
    otherSuccess?: { status: 200 | 201 | 202; description: string };
    /**
     * What the shared 503 means on this route, when not "PostgreSQL (or Redis, in that mode) is
     * unavailable" (a route that touches only PostgreSQL, or nothing but the key lookup).
     */
    unavailable?: string;
  };
  /**
   * Where the input carries a task type's parameters, checked by the engine against that type's
   * schema: the issues of refused parameters point there (`task_parameters` on run-task). `input`:
   * the body is `{name, input, ...}`, and the document types it per task type (POST /tasks).
   */
  taskParameters?: 'task_parameters' | 'input';
  /**
   * The API key scope a procedure needs (set by `scopedProcedure`; read by openapi.ts for its 403),
   * or `any` for one that any valid key may call (`identifiedProcedure`: no 403), or `none` for one
   * that needs no key at all (`openProcedure`: no 401 either; routes.ts reads no key for its REST route).
   */
  scope?: ApiKeyScope | 'any' | 'none';
}

/** How often a subscription stream sends a keep-alive, so that proxies do not close an idle one. */
export const SSE_PING_MS = 15_000;

const t = initTRPC
  .context<Context>()
  .meta<RestMeta>()
  .create({
    errorFormatter({ shape, error }) {
      // The same words as the REST door: a bug is "Internal server error", its cause only logged
      // (app.ts's onError); no stack traces, ever: `data` carries only what a client can use.
      // `data.code` is tRPC's own code (PARSE_ERROR, BAD_REQUEST, NOT_FOUND...), unless the failure
      // carries a code of its own, more precise than its status's word (QUEUE_FULL): then that one,
      // as in the REST body.
      const { message, issues, code, status } = toPublicError(error);
      const own = code !== errorCodeOf(status);
      return {
        message,
        code: shape.code,
        data: {
          code: own ? code : shape.data.code,
          httpStatus: shape.data.httpStatus,
          path: shape.data.path,
          issues,
        },
      };
    },
    sse: {
      ping: { enabled: true, intervalMs: SSE_PING_MS },
      // A client that hears nothing (not even a ping) for this long reconnects, with its last event id.
      client: { reconnectAfterInactivityMs: SSE_PING_MS * 2 + 5_000 },
    },
  });

// 3. PROCEDURES

export const router = t.router;
export const mergeRouters = t.mergeRouters;

/**
 * Every procedure starts here: input PostgreSQL cannot hold is refused up front (400, saying where
 * and why).
 */
async function refuseUnstorable(getRawInput: () => Promise<unknown>): Promise<void> {
  const unstorable = findUnstorable(await getRawInput());
  if (!unstorable) return;
  const path = unstorable.path.join('.');
  const message = `${path}: ${unstorable.reason}`;
  const failure = { status: 400, message, issues: [{ path, message: unstorable.reason }] };
  throw new TRPCError({ code: 'BAD_REQUEST', message, cause: new PublicFailureError(failure) });
}

/**
 * And ends here: the engine's errors (and dependency failures, and a PublicFailureError thrown
 * anywhere) become the API's, in public words (errors.ts) for both doors: 400, 404, 409, 503, never
 * a 500; the HTTP status of a tRPC answer is its TRPCError's code.
 */
function throwInPublicWords(
  result: { ok: true } | { ok: false; error: TRPCError },
  meta: RestMeta | undefined,
): void {
  if (result.ok) return;
  const cause = result.error.cause ?? result.error;
  const failure = publicFailureOf(cause, meta?.taskParameters);
  if (failure) {
    throw new TRPCError({
      code: trpcCodeOf(failure.status),
      message: failure.message,
      cause: new PublicFailureError(failure, { cause }),
    });
  }
}

// Each kind of procedure is ONE middleware (the checks above, and its own caller check between
// them): tRPC copies the call's options and context at every middleware of the chain, and a chain
// of two cost the REST door about 5 % of the server's CPU in a profile of the e2e benchmark.

/**
 * A procedure that needs a key with `scope` (any key in `disabled` mode: every call is then the
 * `default` tenant with every scope). No or a bad key: 401; a key without the scope: 403 naming it.
 * The procedure gets the caller's `identity`: its tenant scopes every task it touches.
 */
export const scopedProcedure = (scope: ApiKeyScope) =>
  t.procedure.meta({ scope }).use(async ({ ctx, meta, next, getRawInput }) => {
    await refuseUnstorable(getRawInput);
    const decision = authorize(ctx.auth, scope);
    if ('refusal' in decision) {
      const { status, message } = decision.refusal;
      throw new TRPCError({ code: status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message });
    }
    const result = await next({ ctx: { ...ctx, identity: decision.identity } });
    throwInPublicWords(result, meta);
    return result;
  });

/** A procedure any valid key may call, whatever its scopes (who am I): no key or a bad one is 401. */
export const identifiedProcedure = t.procedure
  .meta({ scope: 'any' })
  .use(async ({ ctx, meta, next, getRawInput }) => {
    await refuseUnstorable(getRawInput);
    if (!ctx.auth.ok) throw new TRPCError({ code: 'UNAUTHORIZED', message: ctx.auth.reason });
    const result = await next({ ctx: { ...ctx, identity: ctx.auth.identity } });
    throwInPublicWords(result, meta);
    return result;
  });

/**
 * A procedure anyone may call, without a key, in every mode (a wait token's callback URL: the
 * secret in its path is the credential). Its REST route reads no key (routes.ts); it counts against
 * the client IP's rate limit like any request without a key.
 */
export const openProcedure = t.procedure
  .meta({ scope: 'none' })
  .use(async ({ ctx, meta, next, getRawInput }) => {
    await refuseUnstorable(getRawInput);
    const result = await next({ ctx });
    throwInPublicWords(result, meta);
    return result;
  });

/** Reads: get, list, output, streams, subscriptions. */
export const readProcedure = scopedProcedure('tasks:read');
/** Changes to tasks: run, cancel, retry. */
export const writeProcedure = scopedProcedure('tasks:write');
/** A tenant's administration: its own keys (an operator key may call these too, for any tenant). */
export const adminProcedure = scopedProcedure('admin');
/** Across tenants: the queue every tenant shares (pause, resume, depths). Never a tenant admin's. */
export const operatorProcedure = scopedProcedure('operator');
