-- Tags and metadata on tasks (issue 20). `tags`: up to 10 short labels, '{}' when none; `metadata`:
-- a small JSON object of the caller's (at most 4 KB serialised, checked at the edge), null when none.
-- Adding a column with a constant default rewrites nothing (PostgreSQL 11+).
ALTER TABLE "tasks" ADD COLUMN "tags" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "metadata" jsonb;--> statement-breakpoint
-- GET /tasks?tag=…: `tags @> $tags`, over the rows that have tags only (the filter repeats the
-- predicate, `cardinality(tags) > 0`, so that the planner may use it). A 256 kB pending list, as
-- tasks_input_idx has (see schema.ts).
CREATE INDEX "tasks_tags_idx" ON "tasks" USING gin ("tags") WITH (gin_pending_list_limit=256) WHERE cardinality("tasks"."tags") > 0;--> statement-breakpoint
-- GET /tasks?metadata_contains=…: `metadata @> $value`, jsonb_path_ops over the rows that have
-- metadata (`@>` is strict, so it implies `metadata is not null`).
CREATE INDEX "tasks_metadata_idx" ON "tasks" USING gin ("metadata" jsonb_path_ops) WITH (gin_pending_list_limit=256) WHERE "tasks"."metadata" is not null;
