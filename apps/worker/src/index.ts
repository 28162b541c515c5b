export { startWorker, type TaskerWorker } from './worker.ts';
