/**
 * The worker `pnpm bench:steps` runs: the real worker (`startWorker`), which runs, besides the
 * catalog, the benchmark's own task types (steps-types.ts; the server's catalog does not know them,
 * so the benchmark inserts their tasks as a submission would). Run from source:
 * `node --import tsx steps-worker.ts`, with the benchmark's variables.
 */
import { createLogger, loadEnv } from '@tasker/engine';
import { getTaskDefinition } from '@tasker/tasks';
import { startWorker } from '@tasker/worker';
import { benchTypes } from './steps-types.ts';

const env = loadEnv();
const log = createLogger(env, 'bench-steps-worker');
const worker = await startWorker(env, log, {
  tasks: (name) => benchTypes.get(name) ?? getTaskDefinition(name),
});
process.on('SIGTERM', () => {
  worker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
