import type { StreamKind } from '@tasker/engine';
import type { AnyProcedure } from '@trpc/server';
import { z } from 'zod';
import { appRouter } from './root.ts';
import type { RestMeta } from './trpc.ts';

/**
 * Every HTTP route's facts, in one place: which routes are open (no API key is read), which are
 * live streams, which are rate-limited, and how each procedure is served over REST (method, path,
 * success status, query parameters). auth (through app.ts), the rate limits, the metrics, shutdown,
 * the REST adapter (rest.ts) and the OpenAPI document (openapi.ts) all read them from here.
 */

/** What the edge needs to know of a route. */
export interface RouteFacts {
  /** Anyone may call it, in every mode: no API key is read. */
  open: boolean;
  /** Counted by the rate limits. */
  rateLimited: boolean;
  /** A live stream (long by design): counted as one, cut at shutdown, under no request timeout. */
  stream?: StreamKind;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One REST operation of the document. */
export interface RestRoute extends RouteFacts {
  operationId: string;
  method: HttpMethod;
  /** The OpenAPI path, e.g. `/tasks/{id}`. */
  path: `/${string}`;
  /** Served by a Fastify route of its own (sse.ts, app.ts, observability.ts), not by a procedure. */
  handWritten: boolean;
  /** The status of a success: 200, 201 for a route that creates, 202 for one that starts work for later. */
  successStatus: 200 | 201 | 202;
  /** The query parameters that reach the procedure (any other is ignored, as documented). */
  query: readonly string[];
}

/** The Fastify routes that are not procedures. */
const HAND_WRITTEN: readonly Omit<RestRoute, 'handWritten' | 'successStatus' | 'query'>[] = [
  {
    operationId: 'taskEvents',
    method: 'GET',
    path: '/tasks/{id}/events',
    open: false,
    rateLimited: true,
    stream: 'sse',
  },
  { operationId: 'healthz', method: 'GET', path: '/healthz', open: true, rateLimited: false },
  { operationId: 'readyz', method: 'GET', path: '/readyz', open: true, rateLimited: false },
  // Guarded by METRICS_TOKEN, not by an API key (observability.ts).
  { operationId: 'metrics', method: 'GET', path: '/metrics', open: true, rateLimited: false },
  { operationId: 'openApiDocument', method: 'GET', path: '/openapi.json', open: true, rateLimited: true },
];

/** Pages served under these prefixes are open: the API docs and the dashboard (they call the API with a key). */
const OPEN_PAGES = ['/docs', '/ui'] as const;

/** Where tRPC is served; `/trpc/a,b,c` calls the procedures a, b and c (a batch). */
export const TRPC_PREFIX = '/trpc';

const procedures = appRouter._def.procedures as Record<string, AnyProcedure>;

/** The names of the procedures that are subscriptions (streams over SSE). */
const SUBSCRIPTIONS: ReadonlySet<string> = new Set(
  Object.entries(procedures)
    .filter(([, procedure]) => procedure._def.type === 'subscription')
    .map(([name]) => name),
);

/** The length of the longest procedure name (how long a tRPC batch path may grow). */
export const LONGEST_PROCEDURE_NAME = Math.max(...Object.keys(procedures).map((name) => name.length));

/** The keys of a procedure's input object (its query parameters over GET, path parameters aside). */
function inputKeys(procedure: AnyProcedure): string[] {
  const [input] = (procedure._def as { inputs?: unknown[] }).inputs ?? [];
  return input instanceof z.ZodObject ? Object.keys(input.shape) : [];
}

function procedureRoutes(): RestRoute[] {
  return Object.entries(procedures).flatMap(([name, procedure]) => {
    const meta = procedure._def.meta as RestMeta | undefined;
    const openapi = meta?.openapi;
    if (!openapi || openapi.enabled === false) return [];
    const pathParameters = [...openapi.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    return [
      {
        operationId: name,
        method: openapi.method,
        path: openapi.path,
        handWritten: false,
        successStatus: openapi.successStatus ?? 200,
        query:
          openapi.method === 'GET' ? inputKeys(procedure).filter((key) => !pathParameters.includes(key)) : [],
        // A procedure that needs no key (openProcedure): its route reads none.
        open: meta?.scope === 'none',
        rateLimited: true,
      },
    ];
  });
}

/** Every REST operation: the procedures with REST meta, then the hand-written routes. */
export const REST_ROUTES: readonly RestRoute[] = [
  ...procedureRoutes(),
  ...HAND_WRITTEN.map((route) => ({ ...route, handWritten: true, successStatus: 200 as const, query: [] })),
];

/** `/tasks/{id}` → a RegExp matching `/tasks/<anything but a slash>`. */
export function pathPattern(path: string): RegExp {
  return new RegExp(`^${path.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
}

const MATCHERS = REST_ROUTES.map((route) => ({ pattern: pathPattern(route.path), route }));

/** The path of a request URL, without its query. */
export function pathOf(url: string): string {
  const at = url.indexOf('?');
  return at === -1 ? url : url.slice(0, at);
}

/** The procedures a tRPC URL calls (`/trpc/a,b` → `['a', 'b']`), or undefined for another URL. */
export function trpcCalls(path: string): string[] | undefined {
  if (!path.startsWith(`${TRPC_PREFIX}/`)) return undefined;
  const names = path.slice(TRPC_PREFIX.length + 1);
  try {
    return decodeURIComponent(names).split(',');
  } catch {
    return names.split(','); // malformed escapes: tRPC answers it as an unknown procedure
  }
}

const PROTECTED: RouteFacts = { open: false, rateLimited: true };
const OPEN_PAGE: RouteFacts = { open: true, rateLimited: true };

/**
 * The facts of the route a request URL reaches. Anything not listed (a procedure's REST route but an
 * open one's, a tRPC call, an unknown path) needs a key and is rate-limited.
 */
export function routeFacts(url: string): RouteFacts {
  const path = pathOf(url);
  const calls = trpcCalls(path);
  if (calls) {
    return calls.some((name) => SUBSCRIPTIONS.has(name))
      ? { ...PROTECTED, stream: 'subscription' }
      : PROTECTED;
  }
  if (OPEN_PAGES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return OPEN_PAGE;
  const found = MATCHERS.find((m) => (m.route.handWritten || m.route.open) && m.pattern.test(path))?.route;
  return found ? { open: found.open, rateLimited: found.rateLimited, stream: found.stream } : PROTECTED;
}
