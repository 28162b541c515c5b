import { ConfigError, createLogger, loadEnv, UnreachableError } from '@tasker/engine';
import { startHealthServer } from './health-server.ts';
import { startWorker } from './worker.ts';

async function main() {
  const env = loadEnv();
  const log = createLogger(env, 'tasker-worker');
  // METRICS_PORT (0: off): GET /healthz for probes, listening before anything else starts.
  const health = env.METRICS_PORT ? await startHealthServer(env.METRICS_PORT, env.HOST, log) : undefined;
  const worker = await startWorker(env, log);
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
