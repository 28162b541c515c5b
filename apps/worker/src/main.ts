import { ConfigError, createLogger, loadEnv } from '@tasker/engine';
import { startWorker } from './worker.ts';

async function main() {
  const env = loadEnv();
  const log = createLogger(env, 'tasker-worker');
  const worker = await startWorker(env, log);
  let signals = 0;
  const stop = (signal: string) => {
    signals += 1;
    if (signals > 1) {
      log.warn('second signal: exiting now; unfinished tasks will be re-run by another worker');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    worker.close().then(
      () => process.exit(0),
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
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
