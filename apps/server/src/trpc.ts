import { initTRPC, TRPCError } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import type { $ZodIssue } from 'zod/v4/core';
import { describeIssues, type PublicIssue, toPublicIssues } from './errors.ts';
import type { TaskService } from './service.ts';

export interface Context {
  service: TaskService;
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
      // zod 4's ZodError is not an Error, so tRPC may hand it over copied into another object.
      const cause = error.cause as { issues?: unknown } | undefined;
      const issues: PublicIssue[] | undefined = Array.isArray(cause?.issues)
        ? toPublicIssues(cause.issues as $ZodIssue[])
        : undefined;
      const message = issues ? describeIssues(issues) : shape.message;
      // No stack traces, ever: `data` carries only what a client can use.
      return {
        message,
        code: shape.code,
        data: { code: shape.data.code, httpStatus: shape.data.httpStatus, path: shape.data.path, issues },
        error: message,
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
