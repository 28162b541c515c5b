export type { TaskEvent, TaskView } from '@tasker/core';
export type { TaskName, TaskTypes } from '@tasker/tasks';
export { buildApp } from './app.ts';
export { openApiDocument } from './openapi.ts';
export type { AppRouter } from './router.ts';
export { startServer, type TaskerServer } from './server.ts';
