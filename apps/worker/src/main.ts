import {
  ConfigError,
  createLogger,
  loadEnv,
  METRICS_CLOSED,
  metricsAccess,
  startTracing,
  TaskerMetrics,
  UnreachableError,
} from '@tasker/engine';
import { startHealthServer } from './health-server.ts';
import { startWorker } from './worker.ts';

async function main() {
  const env = loadEnv();
  const log = createLogger(env, 'tasker-worker');
  // Tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK is not even loaded then).
  const tracing = await startTracing({
    serviceName: env.OTEL_SERVICE_NAME ?? 'tasker-worker',
    endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    headers: env.OTEL_EXPORTER_OTLP_HEADERS,
  });
  if (tracing) log.info({ endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'tracing on: OTLP over HTTP');
  const metrics = new TaskerMetrics();
  // METRICS_PORT (0: off): GET /healthz for probes and GET /metrics, listening before anything else starts.
  const access = metricsAccess(env);
  if (env.METRICS_PORT && access.closed) log.warn(METRICS_CLOSED);
  const health = env.METRICS_PORT
    ? await startHealthServer(env.METRICS_PORT, env.HOST, log, { metrics, access })
    : undefined;
  const worker = await startWorker(env, log, { metrics });
  health?.set('ok');
  let signals = 0;
  const stop = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting now; unfinished tasks will be re-run by another worker');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    health?.set('stopping');
    worker.close().then(
      async () => {
        await health?.close();
        await tracing?.shutdown().catch(() => {});
        process.exit(0);
      },
      (error) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  // What a user can fix (a bad variable, an address that does not answer) is one line, no stack trace.
  const known = error instanceof ConfigError || error instanceof UnreachableError;
  console.error(known ? error.message : error);
  process.exit(1);
});
