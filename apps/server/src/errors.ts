import type { TRPCError } from '@trpc/server';
import type { $ZodIssue } from 'zod/v4/core';

/** One problem with a request, as clients see it. */
export interface PublicIssue {
  /** Dotted path of the offending field, e.g. `task_parameters.a`; empty for the whole body. */
  path: string;
  message: string;
  /** What was expected, when the validator says so (a type, or the allowed values). */
  expected?: string;
}

/** The one JSON error body of every REST 4xx/5xx. */
export interface RestError {
  error: string;
  code: string;
  status: number;
  issues?: PublicIssue[];
}

export function toPublicIssues(issues: readonly $ZodIssue[]): PublicIssue[] {
  return issues.map((issue) => {
    const out: PublicIssue = { path: issue.path.map(String).join('.'), message: issue.message };
    if (issue.code === 'invalid_type') out.expected = String(issue.expected);
    if (issue.code === 'invalid_value') out.expected = issue.values.map((v) => JSON.stringify(v)).join(' | ');
    return out;
  });
}

export function describeIssues(issues: readonly PublicIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_SUPPORTED',
  406: 'NOT_ACCEPTABLE',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  503: 'SERVICE_UNAVAILABLE',
};

/** Every `code` an error body may carry. */
export const ERROR_CODES = [...new Set([...Object.values(CODE_BY_STATUS), 'INTERNAL_SERVER_ERROR'])];

export function restError(status: number, message: string, issues?: PublicIssue[]): RestError {
  const body: RestError = {
    error: message,
    code: CODE_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST'),
    status,
  };
  if (issues && issues.length > 0) body.issues = issues;
  return body;
}

/** The words and issues of a procedure's error, the same for tRPC and REST clients. */
export function describeTrpcError(error: TRPCError): { message: string; issues?: PublicIssue[] } {
  // zod 4's ZodError is not an Error, so tRPC may hand it over copied into another object.
  const cause = error.cause as { issues?: unknown } | undefined;
  if (Array.isArray(cause?.issues)) {
    const issues = toPublicIssues(cause.issues as $ZodIssue[]);
    return { message: describeIssues(issues), issues };
  }
  return { message: error.message };
}
