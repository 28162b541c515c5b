import { createServer, type ServerResponse } from 'node:http';
import {
  ConfigError,
  errorBody,
  INTERNAL_ERROR_MESSAGE,
  type Logger,
  type MetricsAccess,
  metricsRefusal,
  type TaskerMetrics,
} from '@tasker/engine';

/** What `GET /healthz` says: `starting` until the worker takes jobs, `ok` while it does, `stopping` after a signal. */
export type WorkerHealth = 'starting' | 'ok' | 'stopping';

export interface HealthServer {
  readonly url: string;
  set(health: WorkerHealth): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

/** What `/metrics` serves: this process's registry, to whom metricsAccess allows (METRICS_TOKEN, AUTH_MODE). */
export interface MetricsEndpoint {
  metrics: TaskerMetrics;
  access: MetricsAccess;
}

/**
 * The worker's HTTP listener on METRICS_PORT, for probes (docker compose's health check, Kubernetes):
 * `GET /healthz` answers 200 `{"status":"ok"}` while the worker runs, 503 with `starting` or
 * `stopping` around that. Anything else is 404 (405 for another method on /healthz), in the server's
 * error shape. It listens
 * before the worker connects to anything, so a port already taken stops the worker at once, in one
 * line (a ConfigError). With `metrics`, `GET /metrics` answers Prometheus' text format (a 401 in the
 * server's error shape without the METRICS_TOKEN, when one is set).
 */
export async function startHealthServer(
  port: number,
  host: string,
  log: Logger,
  metrics?: MetricsEndpoint,
): Promise<HealthServer> {
  let health: WorkerHealth = 'starting';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/metrics' && metrics) return void serveMetrics(req.method, req.headers.authorization, res);
    if (path !== '/healthz') return send(res, 404, errorBody(404, 'Not found'));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, errorBody(405, 'Method not allowed'));
    }
    send(res, health === 'ok' ? 200 : 503, { status: health });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `METRICS_PORT=${port}: cannot listen on ${host}:${port} (${error.code ?? error.message})`,
    );
  });
  async function serveMetrics(
    method: string | undefined,
    authorization: string | undefined,
    res: ServerResponse,
  ) {
    if (!metrics) return;
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, errorBody(405, 'Method not allowed'));
    }
    const refusal = metricsRefusal(metrics.access, authorization);
    if (refusal) {
      return send(res, 401, errorBody(401, refusal), { 'www-authenticate': 'Bearer' });
    }
    try {
      const { contentType, body } = await metrics.metrics.scrape();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : body);
    } catch (error) {
      log.error({ err: error }, 'metrics scrape failed');
      send(res, 500, errorBody(500, INTERNAL_ERROR_MESSAGE));
    }
  }
  server.on('error', (error) => log.error({ err: error }, 'health listener error'));
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  log.info({ url }, `health listener ready: GET /healthz${metrics ? ', GET /metrics' : ''}`);
  return {
    url,
    set: (next) => {
      health = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
