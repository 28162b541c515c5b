-- Search by payload (GET /tasks?input_contains=…&output_contains=…): GIN jsonb_path_ops indexes for
-- `@>`, with a 256 kB pending list (see schema.ts). Built without CONCURRENTLY, as migrations run in a
-- transaction: on a large existing table, writes to tasks wait while they build.
CREATE INDEX "tasks_input_idx" ON "tasks" USING gin ("input" jsonb_path_ops) WITH (gin_pending_list_limit=256);--> statement-breakpoint
CREATE INDEX "tasks_output_idx" ON "tasks" USING gin ("output" jsonb_path_ops) WITH (gin_pending_list_limit=256) WHERE "tasks"."output" is not null;