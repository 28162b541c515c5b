-- tasker:no-transaction
-- Built CONCURRENTLY, outside a transaction (the first line; see 0009 and packages/db/README.md):
-- writes to tasks go on while they build. Rewritten after it shipped, which changes nothing for a
-- database that applied it (drizzle applies by the journal's `when`, not by hash: see 0009).
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_owner_status_created_idx" ON "tasks" USING btree ("owner_id","status","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_owner_name_created_idx" ON "tasks" USING btree ("owner_id","name","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);
