-- tasker:no-transaction
-- Search by payload (GET /tasks?input_contains=…&output_contains=…): GIN jsonb_path_ops indexes for
-- `@>`, with a 256 kB pending list (see schema.ts). Built CONCURRENTLY, outside a transaction (the
-- first line; packages/db/src/migrate.ts): writes to tasks go on while they build. IF NOT EXISTS, and
-- the migrator's drop of an INVALID index of the same name (left by a build that failed or was
-- cancelled), let a run that stopped half-way converge when it runs again.
-- This text replaced a transactional one (CREATE INDEX without CONCURRENTLY) after it shipped. A
-- database that applied that one does not apply this: drizzle-orm's migrator (0.45,
-- pg-core/dialect.js `migrate`), and ours after it, apply the migrations whose journal `when` is
-- later than the latest created_at in drizzle.__drizzle_migrations; the file's hash is recorded,
-- never compared.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_input_idx" ON "tasks" USING gin ("input" jsonb_path_ops) WITH (gin_pending_list_limit=256);--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_output_idx" ON "tasks" USING gin ("output" jsonb_path_ops) WITH (gin_pending_list_limit=256) WHERE "tasks"."output" is not null;
