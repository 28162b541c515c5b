import { initTRPC, TRPCError } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import { describeTrpcError } from './errors.ts';
import type { TaskFeed } from './live.ts';
import type { TaskService } from './service.ts';

export interface Context {
  service: TaskService;
  live: TaskFeed;
}

const POSTGRES_DOWN = /ECONNREFUSED|CONNECT_TIMEOUT|CONNECTION_(CLOSED|ENDED|DESTROYED)|ENOTFOUND|57P0[123]/;

/** A dependency failure seen by a procedure, told apart from a bug (drizzle wraps driver errors: walk the causes). */
function unavailable(error: unknown): TRPCError | undefined {
  for (let cause = error, depth = 0; cause && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
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
  .meta<OpenApiMeta>()
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
