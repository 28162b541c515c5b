import { QueryClient } from '@tanstack/react-query';
import type { AppRouter } from '@tasker/server';
import { TASK_STATUSES } from '@tasker/states';
import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
} from '@trpc/client';
import type { inferRouterInputs, inferRouterOutputs } from '@trpc/server';
import { createTRPCContext } from '@trpc/tanstack-react-query';
import { EventSource } from 'eventsource';

export type RouterInputs = inferRouterInputs<AppRouter>;
export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type Task = RouterOutputs['getTask'];
export type TaskEvent = Omit<Task, 'input'>;
export type TaskStatus = Task['status'];
export type Scope = RouterOutputs['whoami']['scopes'][number];

/** Every status, from @tasker/states (typed as the API's: a status the API lacks is a compile error here). */
export const STATUSES: readonly TaskStatus[] = TASK_STATUSES;

const KEY_ITEM = 'tasker.apiKey';

/** The API key, kept for this browser tab's session only (sessionStorage). */
export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY_ITEM),
  set: (key: string) => sessionStorage.setItem(KEY_ITEM, key),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

function authHeaders(): Record<string, string> {
  const key = apiKey.get();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/**
 * Queries and mutations in batches over HTTP; subscriptions over SSE. A browser's own EventSource
 * cannot send headers, so the subscriptions use the `eventsource` package (fetch-based, tRPC's
 * documented way), which sends the same Authorization header as every other request: the key never
 * goes into a URL.
 */
export function createClient() {
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: '/trpc',
          EventSource,
          eventSourceOptions: () => ({
            fetch: (input, init) =>
              fetch(input, { ...init, headers: { ...init?.headers, ...authHeaders() } }),
          }),
        }),
        // At most the server's default TRPC_MAX_BATCH calls per request (larger batches are refused).
        false: httpBatchLink({ url: '/trpc', headers: authHeaders, maxItems: 20 }),
      }),
    ],
  });
}

export function createQueryClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A 4xx will not change by asking again.
        retry: (count, error) => !(error instanceof TRPCClientError && isClientError(error)) && count < 2,
        refetchOnWindowFocus: false,
      },
    },
  });
}

function isClientError(error: TRPCClientError<AppRouter>): boolean {
  const status = error.data?.httpStatus;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/** The words of an API error, for the page. */
export function errorText(error: unknown): string {
  if (error instanceof TRPCClientError) {
    // The server's issues name their field as a dotted string (`input.a`; errors/http.ts), zod's own as an array.
    const issues = (error.data as { issues?: { path?: unknown; message: string }[] } | undefined)?.issues;
    if (issues?.length) {
      const pathOf = (path: unknown) =>
        Array.isArray(path) ? path.join('.') : typeof path === 'string' ? path : '';
      return issues.map((i) => `${pathOf(i.path) ? `${pathOf(i.path)}: ` : ''}${i.message}`).join('; ');
    }
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();
