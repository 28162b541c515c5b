import { getTRPCErrorFromUnknown } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeTrpcError, restError } from './errors.ts';
import { HAND_WRITTEN_OPERATIONS, type OpenApiDocument } from './openapi.ts';
import { appRouter } from './root.ts';
import type { Context } from './trpc.ts';

type Caller = Record<string, (input: unknown) => Promise<unknown>>;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
interface Operation {
  operationId?: string;
  parameters?: { name: string; in: string }[];
  responses?: Record<string, unknown>;
}

/**
 * Every operation of the OpenAPI document (which trpc-to-openapi generates from the procedures'
 * `openapi` meta, its `operationId` being the procedure's name), served as a plain Fastify route
 * that calls the procedure through tRPC's server-side caller: the same input validation,
 * middleware and output validation as over /trpc, and nothing read from tRPC's internals.
 * trpc-to-openapi's own request adapter is not used: it builds a WHATWG Request per call (a fifth
 * of the server's CPU under load) and bypasses Fastify's routing and body parsing.
 */
export function registerRestRoutes(
  app: FastifyInstance,
  createContext: (opts: { req: FastifyRequest }) => Context,
  doc: OpenApiDocument,
): void {
  const callerFor = (request: FastifyRequest) =>
    appRouter.createCaller(createContext({ req: request })) as unknown as Caller;
  const operations = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    METHODS.flatMap((method) => {
      const operation = (item as Record<string, Operation | undefined>)[method];
      // The event stream (sse.ts) and the health routes are Fastify routes of their own.
      if (!operation?.operationId || HAND_WRITTEN_OPERATIONS.has(operation.operationId)) return [];
      // Only the documented query parameters reach the procedure: any other is ignored, as documented.
      const query = (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
      // The documented success status: 200, or 201 for a route that creates (openapi.ts says which).
      const success = Number(Object.keys(operation.responses ?? {}).find((s) => s.startsWith('2')) ?? 200);
      return [{ path, method: method.toUpperCase(), name: operation.operationId, query, success }];
    }),
  );
  for (const { path, method, name, query, success } of operations) {
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
            return reply.code(415).send(restError(415, `Content-Type must be application/json${got}`));
          }
          const body = request.body;
          if (typeof body !== 'object' || body === null || Array.isArray(body)) {
            return reply.code(400).send(restError(400, 'The request body must be a JSON object'));
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
          const call = callerFor(request)[name];
          if (!call) throw new Error(`no procedure ${name}`);
          const result = await call(input);
          return reply.code(success).send(result);
        } catch (cause) {
          const error = getTRPCErrorFromUnknown(cause);
          const status = getHTTPStatusCodeFromError(error);
          if (status >= 500 && status !== 503) {
            request.log.error({ err: error, procedure: name }, 'procedure failed');
            return reply.code(500).send(restError(500, 'Internal server error'));
          }
          const { message, issues } = describeTrpcError(error);
          if (status === 401) reply.header('www-authenticate', 'Bearer');
          return reply.code(status).send(restError(status, message, issues));
        }
      },
    });
  }

  // A known path with another method is a 405 that says which methods it takes, not a 404.
  const routes = Object.entries(doc.paths ?? {}).map(([path, item]) => ({
    pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, '[^/]+')}/?$`),
    methods: Object.keys(item as object).map((m) => m.toUpperCase()),
  }));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const route = routes.find((r) => r.pattern.test(path));
    if (route) {
      return reply
        .code(405)
        .header('allow', route.methods.join(', '))
        .send(
          restError(405, `${request.method} is not supported on ${path}; use ${route.methods.join(' or ')}`),
        );
    }
    return reply.code(404).send(restError(404, `No route ${request.method} ${path}`));
  });
}
