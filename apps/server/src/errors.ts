import {
  describeIssues,
  type ErrorBody,
  type ErrorCode,
  errorBody,
  errorCodeOf,
  INTERNAL_ERROR_MESSAGE,
  type PublicFailure,
  PublicFailureError,
  type PublicIssue,
  publicFailureOf,
  toPublicIssues,
} from '@tasker/engine';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { $ZodIssue } from 'zod/v4/core';

/**
 * The one mapping from an error to what a client gets: its HTTP status, its code and its public
 * words, the same on every door: tRPC's error formatter and procedure middleware (trpc.ts), the REST
 * adapter (rest.ts), Fastify's error handler (app.ts, which answers the streams' and hooks' errors
 * too) and the OpenAPI document's shared responses (openapi.ts). The engine's part (its errors, a
 * dependency that is down, the body shape) is in @tasker/engine, which the worker shares.
 */

export { describeIssues, type ErrorBody, errorBody, PublicFailureError, type PublicIssue, toPublicIssues };

/** An error as a client gets it; `internal`: a bug, answered 500 with generic words, its cause logged. */
export interface PublicError extends PublicFailure {
  code: ErrorCode;
  internal: boolean;
}

/** The public words of Fastify's own errors that are worth rewording (the others say it well). */
function fastifyMessage(error: { code?: string; message: string }, contentType: string | undefined): string {
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return `Content-Type must be application/json${contentType ? ` (got "${contentType}")` : ' (none was sent)'}`;
  return error.message;
}

/** The issues of an input tRPC refused (zod 4's ZodError is not an Error: tRPC may hand it over copied). */
function zodIssuesOf(cause: unknown): PublicIssue[] | undefined {
  const issues = (cause as { issues?: unknown } | undefined)?.issues;
  return Array.isArray(issues) ? toPublicIssues(issues as $ZodIssue[]) : undefined;
}

function internal(): PublicError {
  return { status: 500, code: 'INTERNAL_SERVER_ERROR', message: INTERNAL_ERROR_MESSAGE, internal: true };
}

function known(failure: PublicFailure): PublicError {
  return { ...failure, code: failure.code ?? errorCodeOf(failure.status), internal: false };
}

/**
 * Any error, as a client sees it. In order: what the engine and the dependencies say, and a
 * PublicFailureError's own failure (also as the cause of a tRPC error), a tRPC error's own code (its HTTP status as tRPC gives it) (a refused input carries its issues), an error
 * with a 4xx `statusCode` (Fastify's: a bad body, a body too large, a wrong content type; the rate
 * limit's 429); anything else is a 500.
 */
export function toPublicError(
  error: unknown,
  options: { taskParametersField?: string; contentType?: string } = {},
): PublicError {
  const cause = error instanceof TRPCError && error.cause ? error.cause : error;
  const failure = publicFailureOf(cause, options.taskParametersField);
  if (failure) return known(failure);
  if (error instanceof TRPCError) {
    const status = getHTTPStatusCodeFromError(error);
    if (status >= 500 && status !== 503) return internal();
    const issues = zodIssuesOf(error.cause);
    return issues
      ? known({ status, message: describeIssues(issues), issues })
      : known({ status, message: error.message });
  }
  const { statusCode, code, message } = (error ?? {}) as {
    statusCode?: number;
    code?: string;
    message?: string;
  };
  if (statusCode && statusCode >= 400 && statusCode < 500) {
    return known({
      status: statusCode,
      message: fastifyMessage({ code, message: message ?? '' }, options.contentType),
    });
  }
  return internal();
}

/** The body of a PublicError. */
export function bodyOf(error: PublicFailure): ErrorBody {
  return errorBody(error.status, error.message, error.issues, error.code);
}

/** The tRPC code of a status, for errors thrown inside procedures. */
export function trpcCodeOf(status: number): TRPCError['code'] {
  return errorCodeOf(status) as TRPCError['code'];
}
