export { buildApp } from './app.ts';
export { openApiDocument } from './openapi.ts';
export type { AppRouter } from './router.ts';
export { startServer, type TaskerServer } from './server.ts';
