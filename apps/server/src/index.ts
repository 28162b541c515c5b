export type { Preview, TaskEvent, TaskStepEvent, TaskSummary, TaskView } from '@tasker/engine';
export type { TaskName, TaskTypes } from '@tasker/tasks';
export { buildApp } from './app.ts';
export { openApiDocument } from './openapi.ts';
export type { AppRouter } from './root.ts';
export { startServer, type TaskerServer } from './server.ts';
