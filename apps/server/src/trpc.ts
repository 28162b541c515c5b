/**
 * The tRPC setup, in one place (as create-t3-turbo's `packages/api/src/trpc.ts`):
 * 1. the context every procedure receives, and its factory;
 * 2. initialisation: error shape, SSE keep-alive, procedure metadata (how it is served over REST);
 * 3. the procedure builders the routers in `router/*.ts` use.
 */

import { isDatabaseUnavailable } from '@tasker/db';
import {
  DependencyUnavailableError,
  InvalidArgumentError,
  InvalidTaskInputError,
  isRedisUnavailable,
  type TaskApi,
  TaskNotFoundError,
  TaskStateConflictError,
} from '@tasker/engine';
import { initTRPC, TRPCError } from '@trpc/server';
import { describeTrpcError } from './errors.ts';
import type { TaskWatcher } from './live.ts';

// 1. CONTEXT

/**
 * What procedures may use: the task API (plain data in and out) and the live feed. The context type
 * is inferred from this factory. It names interfaces, not the classes behind them, because the
 * router's type is published inside the SDK and must not drag BullMQ or drizzle along.
 */
export function createContextFactory(services: { tasks: TaskApi; live: TaskWatcher }) {
  return () => ({ tasks: services.tasks, live: services.live });
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
    errorResponses?: Record<number, string>;
  };
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

/** The engine's errors (and dependency failures) as the API's: one mapping for tRPC and REST. */
function toTrpcError(error: unknown): TRPCError | undefined {
  const cause = error instanceof TRPCError && error.cause ? error.cause : error;
  if (cause instanceof InvalidTaskInputError) {
    const issues = cause.issues.map((issue) => ({ ...issue, path: ['task_parameters', ...issue.path] }));
    return new TRPCError({
      code: 'BAD_REQUEST',
      message: cause.message,
      cause: Object.assign(new Error(cause.message), { issues }),
    });
  }
  if (cause instanceof InvalidArgumentError)
    return new TRPCError({ code: 'BAD_REQUEST', message: cause.message });
  if (cause instanceof TaskNotFoundError) return new TRPCError({ code: 'NOT_FOUND', message: cause.message });
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

/** Every procedure: the engine's errors become the API's (400, 404, 409, 503), never a 500. */
export const publicProcedure = t.procedure.use(async ({ next }) => {
  const result = await next();
  if (!result.ok) {
    const mapped = toTrpcError(result.error);
    if (mapped) throw mapped;
  }
  return result;
});
