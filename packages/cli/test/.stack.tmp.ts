import { writeFileSync } from 'node:fs';
import { createTestEnv, spawnApp, startFakeOpenAI } from '@tasker/testing';

const fake = await startFakeOpenAI({ chunkDelayMs: 300 });
const env = createTestEnv({
  OPENAI_API_KEY: 'sk-test',
  OPENAI_BASE_URL: fake.baseURL,
  ...(process.env.STACK_AUTH ? { AUTH_MODE: 'required' } : {}),
});
const server = await spawnApp('server', { ...env.vars, LOG_LEVEL: 'info' });
const worker = await spawnApp('worker', { ...env.vars, LOG_LEVEL: 'info' });
writeFileSync(
  '/tmp/clistack/env',
  `export TASKER_URL=${server.url}\nexport DATABASE_URL=${env.databaseUrl}\n`,
);
console.log('ready', server.url);
const stop = async () => {
  await server.stop();
  await worker.stop();
  await fake.close();
  await env.cleanup();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setInterval(() => {}, 1000);
