import type { TaskEvent, TaskView } from '@tasker/core';
import { initTRPC, TRPCError } from '@trpc/server';
import { describeTrpcError } from './errors.ts';
import type { LegacyTaskOutput, ListFilter, ProcessingState, RunOptions, SubmitResult } from './service.ts';

/**
 * What procedures may use. Declared as narrow interfaces of plain types (not the classes) because
 * the router's type is published in the SDK: it must not drag the server's dependencies along.
 */
export interface Context {
  service: {
    submit(name: string, parameters: unknown, options?: RunOptions): Promise<SubmitResult>;
    get(id: string): Promise<TaskView>;
    cancel(id: string): Promise<TaskView>;
    retry(id: string): Promise<TaskView>;
    setPaused(paused: boolean, name?: string): Promise<ProcessingState>;
    queueState(): Promise<ProcessingState>;
    list(filter: ListFilter): Promise<{ tasks: TaskView[]; nextCursor: string | null }>;
    legacyOutput(id: string): Promise<LegacyTaskOutput>;
  };
  live: {
    watch(
      id: string,
      afterVersion: number,
      signal: AbortSignal,
    ): Promise<AsyncGenerator<TaskEvent> | undefined>;
    watchAll(signal: AbortSignal, filter?: (event: TaskEvent) => boolean): AsyncGenerator<TaskEvent>;
  };
}

/** Procedure metadata: how a procedure is exposed over REST (read by the OpenAPI generator and rest.ts). */
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

const POSTGRES_DOWN = /ECONNREFUSED|CONNECT_TIMEOUT|CONNECTION_(CLOSED|ENDED|DESTROYED)|ENOTFOUND|57P0[123]/;
/** What ioredis (and our fail-fast enqueue) say when Redis cannot take a command. */
const REDIS_DOWN =
  /Stream isn't writeable|Connection is closed|Redis is not connected|Reached the max retries per request/;

/** A dependency failure seen by a procedure, told apart from a bug (drizzle wraps driver errors: walk the causes). */
function unavailable(error: unknown): TRPCError | undefined {
  for (let cause = error, depth = 0; cause && depth < 5; depth++) {
    const { code, message } = cause as { code?: unknown; message?: unknown };
    if (typeof message === 'string' && REDIS_DOWN.test(message)) {
      return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'Redis is unavailable', cause: error });
    }
    if (typeof code === 'string' && POSTGRES_DOWN.test(code)) {
      return new TRPCError({
        code: 'SERVICE_UNAVAILABLE',
        message: 'PostgreSQL is unavailable',
        cause: error,
      });
    }
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}

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
  });

export const router = t.router;

export const publicProcedure = t.procedure.use(async ({ next }) => {
  const result = await next();
  if (!result.ok) {
    const mapped = unavailable(result.error);
    if (mapped) throw mapped;
  }
  return result;
});
