/**
 * The tRPC setup, in one place (as create-t3-turbo's `packages/api/src/trpc.ts`):
 * 1. the context every procedure receives, and its factory;
 * 2. initialisation: error shape, SSE keep-alive, procedure metadata (how it is served over REST);
 * 3. the procedure builders the routers in `router/*.ts` use.
 */

import type { ApiKeyScope } from '@tasker/db';
import { isDatabaseUnavailable } from '@tasker/db';
import {
  DependencyUnavailableError,
  ForbiddenError,
  findUnstorable,
  InvalidArgumentError,
  InvalidTaskInputError,
  isRedisUnavailable,
  NotFoundError,
  type TaskApi,
  TaskStateConflictError,
} from '@tasker/engine';
import { initTRPC, TRPCError } from '@trpc/server';
import { type Auth, authorize } from './auth.ts';
import { describeTrpcError } from './errors.ts';
import type { KeysApi } from './keys-api.ts';
import type { TaskWatcher } from './live.ts';
import type { StreamGate } from './streams.ts';

// 1. CONTEXT

/** What the procedures work with, whoever calls. */
export interface Services {
  tasks: TaskApi;
  live: TaskWatcher;
  keys: KeysApi;
  /** Slots of open streams per key (or client IP), and their end with their key. */
  streams: StreamGate;
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
  };
  /**
   * The API key scope a procedure needs (set by `scopedProcedure`; read by openapi.ts for its 403),
   * or `any` for one that any valid key may call (`identifiedProcedure`: no 403).
   */
  scope?: ApiKeyScope | 'any';
}

/** How often a subscription stream sends a keep-alive, so that proxies do not close an idle one. */
export const SSE_PING_MS = 15_000;

const t = initTRPC
  .context<Context>()
  .meta<RestMeta>()
  .create({
    errorFormatter({ shape, error }) {
      const { message, issues } = describeTrpcError(error);
      // No stack traces, ever: `data` carries only what a client can use.
      return {
        message,
        code: shape.code,
        data: { code: shape.data.code, httpStatus: shape.data.httpStatus, path: shape.data.path, issues },
      };
    },
    sse: {
      ping: { enabled: true, intervalMs: SSE_PING_MS },
      // A client that hears nothing (not even a ping) for this long reconnects, with its last event id.
      client: { reconnectAfterInactivityMs: SSE_PING_MS * 2 + 5_000 },
    },
  });

/**
 * Parameters the task type refuses, as a 400 whose issues point into the request: `field` is where
 * the request carries the parameters (`task_parameters` on run-task, `input` on POST /tasks).
 */
export function invalidTaskInput(cause: InvalidTaskInputError, field: string): TRPCError {
  const issues = cause.issues.map((issue) => ({ ...issue, path: [field, ...issue.path] }));
  return new TRPCError({
    code: 'BAD_REQUEST',
    message: cause.message,
    cause: Object.assign(new Error(cause.message), { issues }),
  });
}

/** The engine's errors (and dependency failures) as the API's: one mapping for tRPC and REST. */
function toTrpcError(error: unknown): TRPCError | undefined {
  const cause = error instanceof TRPCError && error.cause ? error.cause : error;
  if (cause instanceof InvalidTaskInputError) return invalidTaskInput(cause, 'task_parameters');
  if (cause instanceof InvalidArgumentError)
    return new TRPCError({ code: 'BAD_REQUEST', message: cause.message });
  if (cause instanceof NotFoundError) return new TRPCError({ code: 'NOT_FOUND', message: cause.message });
  if (cause instanceof ForbiddenError) return new TRPCError({ code: 'FORBIDDEN', message: cause.message });
  if (cause instanceof TaskStateConflictError)
    return new TRPCError({ code: 'CONFLICT', message: cause.message });
  if (cause instanceof DependencyUnavailableError)
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: cause.message, cause });
  if (isDatabaseUnavailable(cause))
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'PostgreSQL is unavailable', cause });
  if (isRedisUnavailable(cause))
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'Redis is unavailable', cause });
  return undefined;
}

// 3. PROCEDURES

export const router = t.router;
export const mergeRouters = t.mergeRouters;

/**
 * Every procedure: input PostgreSQL cannot hold is refused up front (400, saying where and why);
 * the engine's errors become the API's (400, 404, 409, 503), never a 500.
 */
const procedure = t.procedure.use(async ({ next, getRawInput }) => {
  const unstorable = findUnstorable(await getRawInput());
  if (unstorable) {
    const issues = [{ code: 'custom', path: unstorable.path, message: unstorable.reason }];
    const message = `${unstorable.path.join('.')}: ${unstorable.reason}`;
    throw new TRPCError({
      code: 'BAD_REQUEST',
      message,
      cause: Object.assign(new Error(message), { issues }),
    });
  }
  const result = await next();
  if (!result.ok) {
    const mapped = toTrpcError(result.error);
    if (mapped) throw mapped;
  }
  return result;
});

/**
 * A procedure that needs a key with `scope` (any key in `disabled` mode: every call is then the
 * `default` tenant with every scope). No or a bad key: 401; a key without the scope: 403 naming it.
 * The procedure gets the caller's `identity`: its tenant scopes every task it touches.
 */
export const scopedProcedure = (scope: ApiKeyScope) =>
  procedure.meta({ scope }).use(({ ctx, next }) => {
    const decision = authorize(ctx.auth, scope);
    if ('refusal' in decision) {
      const { status, message } = decision.refusal;
      throw new TRPCError({ code: status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message });
    }
    return next({ ctx: { ...ctx, identity: decision.identity } });
  });

/** A procedure any valid key may call, whatever its scopes (who am I): no key or a bad one is 401. */
export const identifiedProcedure = procedure.meta({ scope: 'any' }).use(({ ctx, next }) => {
  if (!ctx.auth.ok) throw new TRPCError({ code: 'UNAUTHORIZED', message: ctx.auth.reason });
  return next({ ctx: { ...ctx, identity: ctx.auth.identity } });
});

/** Reads: get, list, output, streams, subscriptions. */
export const readProcedure = scopedProcedure('tasks:read');
/** Changes to tasks: run, cancel, retry. */
export const writeProcedure = scopedProcedure('tasks:write');
/** A tenant's administration: its own keys (an operator key may call these too, for any tenant). */
export const adminProcedure = scopedProcedure('admin');
/** Across tenants: the queue every tenant shares (pause, resume, depths). Never a tenant admin's. */
export const operatorProcedure = scopedProcedure('operator');
