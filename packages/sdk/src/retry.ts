/**
 * Retries with tRPC's own `retryLink`, for idempotent calls on transient failures only.
 *
 * - Queries: every one is safe to repeat.
 * - Mutations: only `runTask` with an `idempotency_key` (the server returns the first task for a key
 *   it has seen). Never `cancelTask`, `retryTask`, `pauseQueue`, `resumeQueue`, nor `runTask`
 *   without a key: the first request may have taken effect even though its answer was lost.
 * - Subscriptions: `httpSubscriptionLink`'s EventSource already reconnects by itself after a dropped
 *   connection, resuming from the last event id. What it cannot get over is an HTTP error status
 *   (a proxy's 502/503/504 while the server restarts): EventSource treats any non-200 answer as
 *   fatal. Those are retried here, and `retryLink` resubscribes from the last tracked event id.
 *
 * Transient: a network failure (no answer, or an answer cut short), HTTP 502, 503 or 504, and the
 * server's own SERVICE_UNAVAILABLE / BAD_GATEWAY / GATEWAY_TIMEOUT errors.
 */
import { type Operation, retryLink, type TRPCClientError, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import type { AppRouter, RetryOptions } from './types.ts';

type FetchLike = typeof fetch;

const TRANSIENT_STATUSES = new Set([502, 503, 504]);
const TRANSIENT_CODES = new Set(['SERVICE_UNAVAILABLE', 'BAD_GATEWAY', 'GATEWAY_TIMEOUT']);

export const DEFAULT_RETRY: Required<RetryOptions> = { attempts: 3, delayMs: 200, maxDelayMs: 1000 };

/** No answer reached the client, or an HTTP 502/503/504 that is not a tRPC answer (a proxy's, say). */
export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    message: string,
    /** The HTTP status, when there was an answer. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function isAbort(error: unknown): boolean {
  return (error as { name?: unknown } | null)?.name === 'AbortError';
}

/** Whether a body is what tRPC answers: `{ result }` / `{ error }`, or a batch of them. */
function isTrpcBody(text: string): boolean {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return false;
  }
  const isEnvelope = (item: unknown) =>
    typeof item === 'object' && item !== null && ('result' in item || 'error' in item);
  return Array.isArray(json) ? json.length > 0 && json.every(isEnvelope) : isEnvelope(json);
}

/**
 * The fetch of the query/mutation link: it tells transport failures apart (as `TransportError`),
 * so that the retry policy can see them. It reads each body whole, as `httpBatchLink` does anyway.
 */
export function classifyingFetch(base: FetchLike): FetchLike {
  return async (input, init) => {
    let response: Response;
    let body: string;
    try {
      response = await base(input, init);
      body = await response.text();
    } catch (error) {
      if (isAbort(error) || init?.signal?.aborted) throw error;
      const reason = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
      const detail = reason?.code ?? reason?.message;
      throw new TransportError(
        `Network error: ${(error as Error).message ?? error}${detail ? ` (${detail})` : ''}`,
        undefined,
        { cause: error },
      );
    }
    if (TRANSIENT_STATUSES.has(response.status) && !isTrpcBody(body)) {
      throw new TransportError(
        `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''} from the server or a proxy`,
        response.status,
      );
    }
    return new Response(body === '' ? null : body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
}

/** Whether a failure may be gone on the next attempt. */
export function isTransient(error: TRPCClientError<AppRouter>): boolean {
  const data = error.data as { code?: string; httpStatus?: number } | undefined;
  if (data) {
    return (
      (data.code !== undefined && TRANSIENT_CODES.has(data.code)) ||
      (data.httpStatus !== undefined && TRANSIENT_STATUSES.has(data.httpStatus))
    );
  }
  const cause = error.cause as { code?: unknown } | undefined;
  if (cause instanceof TransportError) return true;
  // EventSource gave up on an HTTP status (its ErrorEvent carries it as `code`).
  return typeof cause?.code === 'number' && TRANSIENT_STATUSES.has(cause.code);
}

/** Whether repeating the operation is harmless. */
export function isIdempotent(op: Operation): boolean {
  if (op.type === 'query' || op.type === 'subscription') return true;
  const input = op.input as { idempotency_key?: unknown } | null | undefined;
  return op.path === 'runTask' && typeof input?.idempotency_key === 'string';
}

/**
 * The links that retry. `retryLink` counts a subscription's attempts over its whole life; the link
 * under it notes the last attempt that delivered an event, so that each outage gets `attempts`.
 */
export function retryLinks(options: RetryOptions): TRPCLink<AppRouter>[] {
  const { attempts, delayMs, maxDelayMs } = { ...DEFAULT_RETRY, ...options };
  /** Per subscription (its context object is shared by its attempts): attempts sent, last one with data. */
  const progress = new WeakMap<object, { sent: number; lastData: number }>();

  const noteProgress: TRPCLink<AppRouter> =
    () =>
    ({ op, next }) => {
      if (op.type !== 'subscription') return next(op);
      const state = progress.get(op.context) ?? { sent: 0, lastData: 0 };
      progress.set(op.context, state);
      const attempt = ++state.sent;
      return observable((observer) => {
        const subscription = next(op).subscribe({
          next(envelope) {
            if (envelope.result.type === 'data' || envelope.result.type === undefined) {
              state.lastData = attempt;
            }
            observer.next(envelope);
          },
          error: (error) => observer.error(error),
          complete: () => observer.complete(),
        });
        return () => subscription.unsubscribe();
      });
    };

  return [
    retryLink<AppRouter>({
      retry: ({ op, error, attempts: made }) => {
        if (op.signal?.aborted || !isIdempotent(op) || !isTransient(error)) return false;
        const sinceProgress =
          op.type === 'subscription' ? made - (progress.get(op.context)?.lastData ?? 0) : made;
        return sinceProgress < attempts;
      },
      retryDelayMs: (attempt) => {
        const delay = Math.min(maxDelayMs, delayMs * 2 ** (attempt - 1));
        return delay * (0.75 + Math.random() / 4);
      },
    }),
    noteProgress,
  ];
}
