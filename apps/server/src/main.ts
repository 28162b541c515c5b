import { ConfigError, createLogger, loadEnv } from '@tasker/engine';
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
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
