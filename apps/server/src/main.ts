import { ConfigError, createLogger, loadEnv, UnreachableError } from '@tasker/engine';
import { startServer } from './server.ts';

async function main() {
  const env = loadEnv();
  const log = createLogger(env, 'tasker-server');
  const server = await startServer(env, log);
  let signals = 0;
  const stop = (signal: string) => {
    if (++signals > 1) process.exit(1);
    log.info({ signal }, 'shutting down');
    server.close().then(
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
