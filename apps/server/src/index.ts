export { buildApp, openApiDocument } from './app.ts';
export type { AppRouter } from './router.ts';
export { startServer, type TaskerServer } from './server.ts';
