import { isDatabaseUnavailable, QueueFullError } from '@tasker/db';
import { BudgetExceededError } from '@tasker/tasks';
import type { $ZodIssue } from 'zod/v4/core';
import { isRedisUnavailable } from '../redis.ts';
import { DependencyUnavailableError } from './dependency-unavailable.ts';
import { ForbiddenError } from './forbidden.ts';
import { InvalidArgumentError } from './invalid-argument.ts';
import { InvalidTaskInputError } from './invalid-task-input.ts';
import { NotFoundError } from './not-found.ts';
import { PublicFailureError } from './public-failure.ts';
import { TaskStateConflictError } from './task-state-conflict.ts';

/**
 * How errors look over HTTP, for every process that answers HTTP (the server, and the worker's
 * probe listener): the one JSON error body, the word (`code`) of each status, and what a client is
 * told about the engine's errors and about a dependency that is down. The server's errors.ts adds
 * tRPC's and Fastify's errors on top of this; nothing else decides a status.
 */

/** One problem with a request, as clients see it. */
export interface PublicIssue {
  /** Dotted path of the offending field, e.g. `task_parameters.a`; empty for the whole body. */
  path: string;
  message: string;
  /** What was expected, when the validator says so (a type, or the allowed values). */
  expected?: string;
}

/** The one JSON error body of every 4xx/5xx answer. */
export interface ErrorBody {
  error: string;
  code: string;
  status: number;
  issues?: PublicIssue[];
}

/** The word of each status an answer may carry: tRPC's error codes, so that both doors say the same. */
export const ERROR_CODE_BY_STATUS = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_SUPPORTED',
  406: 'NOT_ACCEPTABLE',
  408: 'TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'TOO_MANY_REQUESTS',
  503: 'SERVICE_UNAVAILABLE',
} as const;

/**
 * Codes more precise than their status's word, each with its status: QUEUE_FULL is a 429 that
 * retrying soon will not cure (the tenant's or the task type's max_queued), unlike a rate limit;
 * BUDGET_EXCEEDED a 429 of an LLM task type whose tenant reached an LLM budget (Retry-After: the
 * seconds until its window turns).
 * The TOKEN_ ones say why a wait token cannot be completed (POST /tokens/{token}/complete): it
 * was completed already, its timeout passed, or its task is finished (cancelled while it waited).
 * CHILDREN_RUNNING: a retry of a task some of whose child tasks (ctx.run) are still unfinished;
 * SINGLETON_KEY_HELD: a retry of a task whose singleton_key another unfinished task holds.
 */
export const SPECIFIC_ERROR_CODES = {
  QUEUE_FULL: 429,
  BUDGET_EXCEEDED: 429,
  TOKEN_ALREADY_COMPLETED: 409,
  TOKEN_TIMED_OUT: 409,
  TOKEN_TASK_FINISHED: 409,
  CHILDREN_RUNNING: 409,
  SINGLETON_KEY_HELD: 409,
} as const;

export type ErrorCode =
  | (typeof ERROR_CODE_BY_STATUS)[keyof typeof ERROR_CODE_BY_STATUS]
  | keyof typeof SPECIFIC_ERROR_CODES
  | 'INTERNAL_SERVER_ERROR';

/** Every `code` an error body may carry. */
export const ERROR_CODES: ErrorCode[] = [
  ...new Set([
    ...Object.values(ERROR_CODE_BY_STATUS),
    ...(Object.keys(SPECIFIC_ERROR_CODES) as (keyof typeof SPECIFIC_ERROR_CODES)[]),
    'INTERNAL_SERVER_ERROR' as const,
  ]),
];

/** What a client is told of a failure that is a bug: never its cause (that is logged). */
export const INTERNAL_ERROR_MESSAGE = 'Internal server error';

/** The code of a status: its word, or INTERNAL_SERVER_ERROR for a 5xx without one, BAD_REQUEST for a 4xx. */
export function errorCodeOf(status: number): ErrorCode {
  return (
    (ERROR_CODE_BY_STATUS as Record<number, ErrorCode>)[status] ??
    (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST')
  );
}

/** The body of an error: `code` the status's word unless a more precise one is given (QUEUE_FULL). */
export function errorBody(
  status: number,
  message: string,
  issues?: PublicIssue[],
  code: ErrorCode = errorCodeOf(status),
): ErrorBody {
  const body: ErrorBody = { error: message, code, status };
  if (issues && issues.length > 0) body.issues = issues;
  return body;
}

/** zod's issues as clients see them; `prefix` puts them where the request carries the value. */
export function toPublicIssues(
  issues: readonly $ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): PublicIssue[] {
  return issues.map((issue) => {
    const out: PublicIssue = {
      path: [...prefix, ...issue.path].map(String).join('.'),
      message: issue.message,
    };
    if (issue.code === 'invalid_type') out.expected = String(issue.expected);
    if (issue.code === 'invalid_value') out.expected = issue.values.map((v) => JSON.stringify(v)).join(' | ');
    return out;
  });
}

export function describeIssues(issues: readonly PublicIssue[]): string {
  return issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
}

/** What a client is told about a failure: its status, words and, for bad input, each problem. */
export interface PublicFailure {
  status: number;
  message: string;
  issues?: PublicIssue[];
  /** A code more precise than the status's word (SPECIFIC_ERROR_CODES), e.g. QUEUE_FULL. */
  code?: ErrorCode;
  /** Seconds the client should wait: sent as `Retry-After` (BUDGET_EXCEEDED: until the budget's window turns). */
  retryAfterSeconds?: number;
}

/**
 * The engine's errors and dependency failures as a client sees them: bad input 400, refused 403, unknown 404,
 * wrong state 409, a full queue 429 QUEUE_FULL (max_queued), a dependency down or not configured 503 naming it;
 * a PublicFailureError as it says (its own status, words, issues and code). Undefined for anything else,
 * which is a bug: a 500 whose cause is logged and never shown.
 *
 * `taskParametersField` is where the request carries a task type's parameters (`task_parameters`
 * on run-task, `input` on POST /tasks): the issues of parameters the task type refuses point there.
 */
export function publicFailureOf(
  error: unknown,
  taskParametersField = 'task_parameters',
): PublicFailure | undefined {
  if (error instanceof PublicFailureError) return error.failure;
  if (error instanceof InvalidTaskInputError) {
    const issues = toPublicIssues(error.issues, [taskParametersField]);
    return { status: 400, message: describeIssues(issues), issues };
  }
  if (error instanceof InvalidArgumentError) {
    return { status: 400, message: error.message, issues: [{ path: error.argument, message: error.reason }] };
  }
  if (error instanceof NotFoundError) return { status: 404, message: error.message };
  if (error instanceof ForbiddenError) return { status: 403, message: error.message };
  if (error instanceof TaskStateConflictError) return { status: 409, message: error.message };
  if (error instanceof QueueFullError) return { status: 429, code: 'QUEUE_FULL', message: error.message };
  if (error instanceof BudgetExceededError) {
    const seconds = Math.max(1, Math.ceil((error.until.getTime() - Date.now()) / 1000));
    return { status: 429, code: 'BUDGET_EXCEEDED', message: error.message, retryAfterSeconds: seconds };
  }
  if (error instanceof DependencyUnavailableError) return { status: 503, message: error.message };
  if (isDatabaseUnavailable(error)) return { status: 503, message: 'PostgreSQL is unavailable' };
  if (isRedisUnavailable(error)) return { status: 503, message: 'Redis is unavailable' };
  return undefined;
}
