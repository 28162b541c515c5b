export { type HealthServer, startHealthServer, type WorkerHealth } from './health-server.ts';
export { startWorker, type TaskerWorker } from './worker.ts';
