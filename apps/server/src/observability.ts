import {
  endRequestSpan,
  metricsAuthorized,
  metricsRefusal,
  type StreamKind,
  startRequestSpan,
  type TaskerMetrics,
} from '@tasker/engine';
import type { FastifyInstance } from 'fastify';
import { restError } from './errors.ts';

export interface ObservabilityOptions {
  metrics: TaskerMetrics;
  /** METRICS_TOKEN: when set, `/metrics` needs `Authorization: Bearer <token>`. */
  token?: string;
}

/** Which live stream a request opens, if any: the SSE route, or a tRPC subscription. */
function streamOf(path: string): StreamKind | undefined {
  if (path.startsWith('/tasks/') && path.endsWith('/events')) return 'sse';
  if (path.startsWith('/trpc/onTask')) return 'subscription';
  return undefined;
}

/**
 * Per request, from its first hook to the moment its response closes (so that streams and replies
 * sent by a hook, such as a 401 or a 429, are measured too): the HTTP request counter and latency
 * histogram, labelled with the route's pattern (`/tasks/:id`; `unmatched` for a 404, never the raw
 * URL), the open-streams gauge, and, with tracing on, a server span that the rest of the request
 * runs in. Then `GET /metrics`, outside authentication and rate limiting (auth.ts and app.ts list it
 * as open), guarded by METRICS_TOKEN when that is set. Register before every other hook.
 */
export function registerObservability(app: FastifyInstance, { metrics, token }: ObservabilityOptions): void {
  app.addHook('onRequest', (request, reply, done) => {
    const started = performance.now();
    const route = request.routeOptions.url ?? 'unmatched';
    const stream = streamOf(request.url.split('?', 1)[0] ?? '');
    if (stream) metrics.streamOpened(stream);
    const traced = startRequestSpan(`${request.method} ${route}`, request.headers, {
      'http.request.method': request.method,
      'http.route': route,
      'url.path': request.url.split('?', 1)[0] ?? '',
      'tasker.request_id': request.id,
    });
    reply.raw.once('close', () => {
      if (stream) metrics.streamClosed(stream);
      const status = reply.raw.statusCode;
      metrics.httpRequest(request.method, route, status, (performance.now() - started) / 1000);
      if (traced) endRequestSpan(traced.span, status);
    });
    if (traced) traced.run(done);
    else done();
  });

  app.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
    const header = request.headers.authorization;
    if (!metricsAuthorized(header, token)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send(restError(401, metricsRefusal(header)));
    }
    const { contentType, body } = await metrics.scrape();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}
