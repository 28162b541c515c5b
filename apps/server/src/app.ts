import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import cors from '@fastify/cors';
import { type Logger, type MetricsAccess, requestScope, type TaskerMetrics } from '@tasker/engine';
import { type FastifyTRPCPluginOptions, fastifyTRPCPlugin } from '@trpc/server/adapters/fastify';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import helmet from 'helmet';
import type { Authenticator } from './auth.ts';
import { registerDashboard } from './dashboard.ts';
import { registerDocs } from './docs.ts';
import { Drain, withReconnectHints } from './drain.ts';
import { bodyOf, errorBody, toPublicError } from './errors.ts';
import { registerObservability } from './observability.ts';
import { openApiDocument } from './openapi.ts';
import { registerRateLimits } from './rate-limits.ts';
import { registerRestRoutes } from './rest.ts';
import { type AppRouter, appRouter } from './root.ts';
import { LONGEST_PROCEDURE_NAME, routeFacts } from './routes.ts';
import { registerEventStream } from './sse.ts';
import { createContextFactory, type Services } from './trpc.ts';

export interface AppOptions {
  log: Logger;
  bodyLimit: number;
  /** HTTP_*_TIMEOUT_MS, in ms (0: none where the variable allows it). */
  /** `sseKeepAlive`: the comment line of a quiet SSE stream, this often (SSE_KEEP_ALIVE_MS; default 15 s). */
  timeouts: { request: number; headers: number; keepAlive: number; idle: number; sseKeepAlive?: number };
  services: Services;
  authenticator: Authenticator;
  /**
   * Requests (tRPC calls) per minute per key, and per client IP without a valid key; 0: none.
   * Shared by every server through `rateLimitRedis`; without Redis each server counts on its own
   * (rate-limits.ts).
   */
  rateLimitPerMinute: number;
  /** TRPC_MAX_BATCH: the most calls one tRPC batch request may carry. */
  trpcMaxBatch: number;
  rateLimitRedis?: unknown;
  /** Prefix of the rate-limit counters in Redis (see keys.ts). */
  rateLimitNamespace: string;
  /** Origins allowed to call from a browser (CORS); none by default. */
  corsOrigins: string[];
  /** Each resolves when its dependency answers, rejects otherwise. */
  readiness: Record<string, () => Promise<unknown>>;
  version?: string;
  /** The built dashboard served at /ui (default: apps/dashboard/dist, see dashboard.ts). */
  dashboardDir?: string;
  /** Whether the dashboard should ask for an API key (the server's AUTH_MODE). */
  authMode?: 'required' | 'disabled';
  /** Prometheus metrics and `GET /metrics` (observability.ts); none without. */
  metrics?: TaskerMetrics;
  /** Who may read `/metrics` (METRICS_TOKEN, AUTH_MODE); default: anyone. */
  metricsAccess?: MetricsAccess;
  /** The shutdown's first phase (drain.ts): /readyz answers 503 and answers close their connections. */
  drain?: Drain;
}

/**
 * At close, how long the live streams get to write their last bytes (the reconnect hint) once
 * told to end; a stream still open then (its client does not read) is cut.
 */
const STREAM_END_MS = 2000;

const MAX_JSON_DEPTH = 64;

/**
 * The Content-Security-Policy of every answer: the dashboard (/ui) and the API docs (/docs) load
 * scripts, styles, fonts and images from this server only (data: images for Swagger UI's icons),
 * call only this server, and no page of ours may be framed. JSON answers carry it too (harmless,
 * and nothing is left out by mistake).
 */
const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  connectSrc: ["'self'"],
  fontSrc: ["'self'", 'data:'],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  imgSrc: ["'self'", 'data:'],
  objectSrc: ["'none'"],
  scriptSrc: ["'self'"],
  scriptSrcAttr: ["'none'"],
  styleSrc: ["'self'"],
};

/**
 * The security headers of every answer (refusals included): the CSP above, no framing, nosniff,
 * and the rest of helmet's defaults. They never change, so helmet writes them once, here, into a
 * plain record that every answer copies: @fastify/helmet built helmet's middleware again for each
 * request (parsing the CSP each time), 5 % of the server's CPU in a profile of the e2e benchmark.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = (() => {
  const headers: Record<string, string> = {};
  const response = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    frameguard: { action: 'deny' },
  })({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error;
  });
  return Object.freeze(headers);
})();
/**
 * A body over the limit is read to its end, up to this many times the limit, before the 413 goes
 * out: a client still sending (Node's fetch) would otherwise meet a closed socket (EPIPE) instead
 * of the answer. Larger than that, the connection is closed at once.
 */
const DISCARD_FACTOR = 8;

/** Reads and drops the rest of a request's body, up to `max` bytes; false when it is larger or breaks off. */
function discardBody(raw: IncomingMessage, max: number): Promise<boolean> {
  if (raw.complete || raw.destroyed) return Promise.resolve(raw.complete);
  if (Number(raw.headers['content-length']) > max) return Promise.resolve(false);
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (read: boolean) => {
      raw.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
      resolve(read);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > max) finish(false);
    };
    const onEnd = () => finish(true);
    const onClose = () => finish(false);
    raw.on('data', onData).once('end', onEnd).once('close', onClose).once('error', onClose);
    raw.resume();
  });
}

/**
 * What a connection that breaks HTTP's rules before any route is reached gets, in the one error
 * shape (Fastify's default writes its own): 408 for headers or a body that do not arrive within
 * HTTP_HEADERS_TIMEOUT_MS / HTTP_REQUEST_TIMEOUT_MS, 431 for headers too large, 400 otherwise.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'The request did not arrive in time (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS)']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'The request headers are too large']
        : [400, 'Malformed HTTP request'];
  if (socket.writable) {
    const body = JSON.stringify(errorBody(status, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** A request id a caller may choose: at most 128 of these characters. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** True when the JSON text nests arrays/objects deeper than `max` (strings are skipped). */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { log } = options;
  // An app closed directly (tests) drains too, from its preClose.
  const drain = options.drain ?? new Drain();
  const createContext = createContextFactory(options.services);
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    // A slow client holds a socket for a bounded time: the request (headers, then body) must
    // arrive within these, an idle connection is closed. Streams are answers: not cut (below).
    requestTimeout: options.timeouts.request,
    connectionTimeout: options.timeouts.idle,
    keepAliveTimeout: options.timeouts.keepAlive,
    http: {
      headersTimeout: options.timeouts.headers,
      // How often Node checks the two above (its default, 30 s, would let a request run that much over).
      connectionsCheckingInterval: 1000,
    },
    clientErrorHandler: answerClientError,
    // A tRPC batch names its calls in the path (`/trpc/a,b,c`): long enough for several times
    // TRPC_MAX_BATCH calls, so that tRPC's own cap answers, not Fastify's 100-character default.
    routerOptions: { maxParamLength: Math.max(100, 4 * options.trpcMaxBatch * (LONGEST_PROCEDURE_NAME + 1)) },
    // A caller's x-request-id is kept when it is a plain token (it goes into every log line and
    // back in the answer); anything else is replaced by a new one.
    requestIdHeader: false,
    genReqId: (request) => {
      const sent = request.headers['x-request-id'];
      return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
    },
    // Every line logged during a request carries `requestId` through requestScope (below), request.log
    // and the engine's logger alike: no second binding here.
    childLoggerFactory: (logger) => logger,
    // Per-request logs at info would dominate at thousands of requests/s; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    // A request that reaches the server while it closes (on a connection opened before) is served,
    // with `Connection: close`: a rolling deploy answers no 503 (server.ts, drain.ts).
    return503OnClosing: false,
  });

  // JSON with prototype-poisoning protection (Fastify's parser) and a nesting limit.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) {
      const error = new Error(`JSON nests deeper than ${MAX_JSON_DEPTH} levels`) as FastifyError;
      error.statusCode = 400;
      done(error, undefined);
      return;
    }
    defaultJson(request, text, done);
  });

  // Errors met outside a procedure (a bad body, the key lookup, a stream's first read, a hook's
  // refusal), mapped like every other (errors.ts).
  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      await discardBody(request.raw, options.bodyLimit * DISCARD_FACTOR);
    const failure = toPublicError(error, { contentType: request.headers['content-type'] });
    if (failure.internal) request.log.error({ err: error }, 'unhandled error');
    return reply.code(failure.status).send(bodyOf(failure));
  });
  // Metrics, request spans and GET /metrics: first, so that they cover every other hook.
  if (options.metrics) {
    registerObservability(app, {
      metrics: options.metrics,
      access: options.metricsAccess ?? { closed: false },
      drain,
    });
  }
  // Streams (SSE, tRPC subscriptions) never end on their own: on close, end them, each with a
  // reconnect hint (drain.ts), so that clients resume (with their last event id) on another
  // instance instead of holding shutdown. They are long by design, and keep themselves alive: the
  // idle timeout does not apply to them.
  const streaming = new Set<ServerResponse>();
  let allEnded: (() => void) | undefined;
  app.addHook('onRequest', async (request, reply) => {
    if (!routeFacts(request.url).stream) return;
    const res = reply.raw;
    request.raw.socket.setTimeout(0);
    streaming.add(res);
    res.once('close', () => {
      streaming.delete(res);
      if (streaming.size === 0) allEnded?.();
    });
  });
  app.addHook('preClose', async () => {
    // Already started by the server's close (server.ts) after SHUTDOWN_DELAY_MS; here too for an
    // app closed directly (tests).
    drain.start();
    options.services.streams.drain();
    if (streaming.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        allEnded = resolve;
        timer = setTimeout(resolve, STREAM_END_MS);
      });
      clearTimeout(timer);
    }
    // Ended streams leave idle connections (closed with the listener); a stream still open is cut.
    for (const res of streaming) res.socket?.destroy();
  });
  // Synchronous, and cheap for every answer but a tRPC event stream (the one Response whose type is
  // text/event-stream: the SSE route writes its stream itself).
  app.addHook('onSend', (_request, reply, payload, done) => {
    // Draining: the client's next request opens a new connection, which a balancer sends elsewhere
    // (from app.close() on, Fastify says Connection: close itself; this covers SHUTDOWN_DELAY_MS).
    if (drain.draining) reply.header('connection', 'close');
    // A tRPC subscription's event stream: with the reconnect hints (its own writer has no room for them).
    if (
      !(payload instanceof Response) ||
      !payload.body ||
      !payload.headers.get('content-type')?.startsWith('text/event-stream')
    ) {
      done(null, payload);
      return;
    }
    const gate = options.services.streams;
    // tRPC says `Connection: keep-alive`, and a Response's headers go out over the reply's: while
    // draining, `close` is set here too. Otherwise a stream opened while the server closes (ended at
    // once) would leave its connection open past the listener's close: its client's reconnection
    // would come back here, and the process would wait for it until SHUTDOWN_TIMEOUT_MS.
    const headers = new Headers(payload.headers);
    if (drain.draining) headers.set('connection', 'close');
    done(
      null,
      new Response(
        withReconnectHints(
          payload.body,
          () => gate.draining,
          () => drain.streamDrained(),
        ),
        { status: payload.status, statusText: payload.statusText, headers },
      ),
    );
  });

  // Every answer carries its request id and the security headers, and every log line written while
  // it is served carries the request id.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    reply.header('x-request-id', request.id);
    requestScope.run({ requestId: request.id }, done);
  });
  if (options.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: options.corsOrigins,
      allowedHeaders: ['authorization', 'content-type', 'last-event-id', 'x-request-id', 'trpc-accept'],
      exposedHeaders: [
        'x-request-id',
        'retry-after',
        'ratelimit-limit',
        'ratelimit-remaining',
        'ratelimit-reset',
      ],
      maxAge: 600,
    });
  }
  // Who is calling: read once per request, between the two rate limits: a client IP that spent its
  // budget gets no key lookup; a known key counts against its own budget (rate-limits.ts).
  const limits =
    options.rateLimitPerMinute > 0
      ? await registerRateLimits(app, options.authenticator, {
          perMinute: options.rateLimitPerMinute,
          redis: options.rateLimitRedis,
          namespace: options.rateLimitNamespace,
          maxBatch: options.trpcMaxBatch,
        })
      : undefined;
  if (limits) app.addHook('onRequest', limits.beforeLookUp);
  // No key is read for an open route, nor for an unknown path (404/405: nothing to authorize).
  options.authenticator.register(app, (request) => request.is404 || routeFacts(request.url).open);
  if (limits) {
    app.addHook('onRequest', limits.perCaller);
    app.addHook('onRequest', limits.perBatchCall);
  }

  await app.register(fastifyTRPCPlugin, {
    prefix: '/trpc',
    trpcOptions: {
      router: appRouter,
      createContext,
      // A larger batch is refused before any of its calls runs: a 400 in tRPC's error shape.
      maxBatchSize: options.trpcMaxBatch,
      onError: ({ error, path, req }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR')
          req.log.error({ err: error, path }, 'tRPC procedure failed');
      },
      responseMeta: ({ errors }) => {
        const headers: Record<string, string> = {};
        if (errors.some((error) => error.code === 'UNAUTHORIZED')) headers['www-authenticate'] = 'Bearer';
        // An LLM budget reached (BUDGET_EXCEEDED): the seconds until its window turns, as on the REST door.
        const wait = errors
          .map((error) => toPublicError(error).retryAfterSeconds)
          .find((seconds) => seconds !== undefined);
        if (wait !== undefined) headers['retry-after'] = String(wait);
        return { headers };
      },
    } satisfies FastifyTRPCPluginOptions<AppRouter>['trpcOptions'],
  });

  const doc = openApiDocument(options.version);
  app.get('/openapi.json', { logLevel: 'warn' }, async () => doc);
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    // Shutting down: out of the load balancer's rotation at once, whatever the dependencies say.
    if (drain.draining)
      return reply.code(503).send({
        ...errorBody(503, 'This server is shutting down: send requests to another'),
        draining: true,
      });
    const checks = await Promise.all(
      Object.entries(options.readiness).map(async ([name, check]) => {
        try {
          await Promise.race([
            check(),
            new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), 2000).unref()),
          ]);
          return [name, 'ok'] as const;
        } catch {
          return [name, 'unavailable'] as const;
        }
      }),
    );
    const down = checks.filter(([, state]) => state !== 'ok').map(([name]) => name);
    const dependencies = Object.fromEntries(checks);
    if (down.length === 0) return { status: 'ok', dependencies };
    const names = down.map((n) => ({ postgres: 'PostgreSQL', redis: 'Redis' })[n] ?? n).join(' and ');
    return reply
      .code(503)
      .send({ ...errorBody(503, `${names} ${down.length > 1 ? 'are' : 'is'} unavailable`), dependencies });
  });

  // REST: the same procedures as plain routes, described by the OpenAPI document.
  registerRestRoutes(app, createContext);
  registerEventStream(
    app,
    options.services.live,
    options.services.streams,
    () => drain.streamDrained(),
    options.timeouts.sseKeepAlive,
  );
  // /docs: the document, rendered from assets served here.
  await registerDocs(app, doc);
  registerDashboard(app, { root: options.dashboardDir, authMode: options.authMode ?? 'required' });

  return app;
}
