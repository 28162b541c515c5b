export { startWorker, type TaskerWorker } from './worker.ts';
export { type HealthServer, startHealthServer, type WorkerHealth } from './health-server.ts';
