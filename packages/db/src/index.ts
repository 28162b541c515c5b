export { createDb, type Database, type DbClient, type DbOptions } from './client.ts';
export { ensureDatabase, migrateDatabase, migrationsFolder } from './migrate.ts';
export * from './schema.ts';
export { type StaleTask, type TaskListFilter, TaskStore, type TaskStoreOptions } from './store.ts';
