import { ConfigError, createLogger, loadEnv, UnreachableError } from '@tasker/engine';
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
  // What a user can fix (a bad variable, an address that does not answer) is one line, no stack trace.
  const known = error instanceof ConfigError || error instanceof UnreachableError;
  console.error(known ? error.message : error);
  process.exit(1);
});
