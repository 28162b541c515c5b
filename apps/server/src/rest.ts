import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bodyOf, errorBody, toPublicError } from './errors.ts';
import { appRouter } from './root.ts';
import { pathOf, pathPattern, REST_ROUTES } from './routes.ts';
import type { Context } from './trpc.ts';

type Caller = Record<string, (input: unknown) => Promise<unknown>>;

/**
 * Every procedure with REST meta (routes.ts reads method, path, success status and query
 * parameters from it; the OpenAPI document describes the same), served as a plain Fastify route
 * that calls the procedure through tRPC's server-side caller: the same input validation,
 * middleware and output validation as over /trpc, and nothing read from tRPC's internals.
 * trpc-to-openapi's own request adapter is not used: it builds a WHATWG Request per call (a fifth
 * of the server's CPU under load) and bypasses Fastify's routing and body parsing.
 */
export function registerRestRoutes(
  app: FastifyInstance,
  createContext: (opts: { req: FastifyRequest }) => Context,
): void {
  // The event stream (sse.ts) and the health routes are Fastify routes of their own.
  const operations = REST_ROUTES.filter((route) => !route.handWritten);
  for (const { path, method, operationId: name, query, successStatus } of operations) {
    const hasBody = method !== 'GET' && method !== 'DELETE';
    app.route({
      method,
      url: path.replace(/\{(\w+)\}/g, ':$1'),
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        let input: Record<string, unknown>;
        const sentBody = request.body !== undefined || Number(request.headers['content-length'] ?? 0) > 0;
        if (hasBody && sentBody) {
          const type = request.headers['content-type'];
          if (!type?.toLowerCase().startsWith('application/json')) {
            const got = type ? ` (got "${type}")` : ' (none was sent)';
            return reply.code(415).send(errorBody(415, `Content-Type must be application/json${got}`));
          }
          const body = request.body;
          if (typeof body !== 'object' || body === null || Array.isArray(body)) {
            return reply.code(400).send(errorBody(400, 'The request body must be a JSON object'));
          }
          input = { ...(body as object), ...(request.params as object) };
        } else if (hasBody) {
          input = { ...(request.params as object) }; // e.g. POST /tasks/{id}/cancel with no body
        } else {
          const sent = request.query as Record<string, unknown>;
          input = { ...(request.params as object) };
          for (const key of query) if (key in sent) input[key] = sent[key];
        }
        try {
          const context = createContext({ req: request });
          const call = (appRouter.createCaller(context) as unknown as Caller)[name];
          if (!call) throw new Error(`no procedure ${name}`);
          const result = await call(input);
          // A procedure may answer with its route's other success status (routes.ts: otherSuccess).
          return reply.code(context.rest.status ?? successStatus).send(result);
        } catch (cause) {
          const error = toPublicError(cause);
          if (error.internal) request.log.error({ err: cause, procedure: name }, 'procedure failed');
          if (error.status === 401) reply.header('www-authenticate', 'Bearer');
          if (error.retryAfterSeconds !== undefined)
            reply.header('retry-after', String(error.retryAfterSeconds));
          return reply.code(error.status).send(bodyOf(error));
        }
      },
    });
  }

  // A known path with another method is a 405 that says which methods it takes, not a 404.
  const byPath = new Map<string, string[]>();
  for (const route of REST_ROUTES) byPath.set(route.path, [...(byPath.get(route.path) ?? []), route.method]);
  const routes = [...byPath].map(([path, methods]) => ({ pattern: pathPattern(path), methods }));
  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url);
    const route = routes.find((r) => r.pattern.test(path));
    if (route) {
      return reply
        .code(405)
        .header('allow', route.methods.join(', '))
        .send(
          errorBody(405, `${request.method} is not supported on ${path}; use ${route.methods.join(' or ')}`),
        );
    }
    return reply.code(404).send(errorBody(404, `No route ${request.method} ${path}`));
  });
}
