import { ConfigError, createLogger, loadEnv, startTracing, UnreachableError } from '@tasker/engine';
import { startServer } from './server.ts';

async function main() {
  const env = loadEnv();
  const log = createLogger(env, 'tasker-server');
  // Tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK is not even loaded then).
  const tracing = await startTracing({
    serviceName: env.OTEL_SERVICE_NAME ?? 'tasker-server',
    endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    headers: env.OTEL_EXPORTER_OTLP_HEADERS,
  });
  if (tracing) log.info({ endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT }, 'tracing on: OTLP over HTTP');
  const server = await startServer(env, log);
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'shutting down');
    server.close().then(
      async () => {
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
