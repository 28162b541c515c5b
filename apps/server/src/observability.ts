import {
  endRequestSpan,
  type MetricsAccess,
  metricsRefusal,
  startRequestSpan,
  type TaskerMetrics,
} from '@tasker/engine';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import type { Drain } from './drain.ts';
import { errorBody } from './errors.ts';
import { pathOf, routeFacts } from './routes.ts';

export interface ObservabilityOptions {
  metrics: TaskerMetrics;
  /** Who may read `/metrics` (METRICS_TOKEN, AUTH_MODE): see metricsAccess. */
  access: MetricsAccess;
  /** The server's shutdown (drain.ts), as `tasker_server_draining` and `tasker_server_streams_drained_total`. */
  drain: Drain;
}

/**
 * Per request, from its first hook to the moment its response closes (so that streams and replies
 * sent by a hook, such as a 401 or a 429, are measured too): the HTTP request counter and latency
 * histogram, labelled with the route's pattern (`/tasks/:id`; `unmatched` for a 404, never the raw
 * URL), the open-streams gauge, and, with tracing on, a server span that the rest of the request
 * runs in. Then `GET /metrics`, outside authentication and rate limiting (open and not rate-limited
 * in routes.ts), guarded by METRICS_TOKEN when that is set, closed in AUTH_MODE=required without it. Register before every other hook.
 */
export function registerObservability(
  app: FastifyInstance,
  { metrics, access, drain }: ObservabilityOptions,
): void {
  registerDrainMetrics(metrics, drain);
  app.addHook('onRequest', (request, reply, done) => {
    const started = performance.now();
    const route = request.routeOptions.url ?? 'unmatched';
    const { stream } = routeFacts(request.url);
    if (stream) metrics.streamOpened(stream);
    const traced = startRequestSpan(`${request.method} ${route}`, request.headers, {
      'http.request.method': request.method,
      'http.route': route,
      'url.path': pathOf(request.url),
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
    const refusal = metricsRefusal(access, request.headers.authorization);
    if (refusal) return reply.code(401).header('www-authenticate', 'Bearer').send(errorBody(401, refusal));
    const { contentType, body } = await metrics.scrape();
    return reply.header('content-type', contentType).header('cache-control', 'no-store').send(body);
  });
}

/**
 * The shutdown, read from `drain` at each scrape: whether this server drains (1 from SIGTERM on:
 * a dashboard tells a rolling deploy from a crash), and how many live streams it ended with the
 * reconnect hint (their clients resume on another server). The server's own: a worker has neither.
 */
function registerDrainMetrics(metrics: TaskerMetrics, drain: Drain): void {
  const registers = [metrics.registry];
  new Gauge({
    name: 'tasker_server_draining',
    help: 'Whether this server is shutting down (1 from SIGTERM on: /readyz answers 503), else 0',
    registers,
    collect() {
      this.set(drain.draining ? 1 : 0);
    },
  });
  new Counter({
    name: 'tasker_server_streams_drained_total',
    help: 'Live streams (SSE and tRPC subscriptions) this server ended at shutdown with a reconnect hint, those opened while it closes included',
    registers,
    collect() {
      this.reset();
      this.inc(drain.streamsDrained);
    },
  });
}
