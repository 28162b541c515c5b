-- tasker:no-transaction
-- Built CONCURRENTLY, outside a transaction (the first line; see 0009 and packages/db/README.md):
-- writes to tasks go on while they build. Each index is dropped and built again in turn, so that
-- only one of the three is missing at a time. A run that stops half-way drops again, when it runs
-- again, what it had built: it converges, at the cost of that build. Rewritten after it shipped,
-- which changes nothing for a database that applied it (see 0009).
DROP INDEX CONCURRENTLY IF EXISTS "tasks_owner_created_idx";--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_owner_created_idx" ON "tasks" USING btree ("owner_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
DROP INDEX CONCURRENTLY IF EXISTS "tasks_owner_status_created_idx";--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_owner_status_created_idx" ON "tasks" USING btree ("owner_id","status","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
DROP INDEX CONCURRENTLY IF EXISTS "tasks_owner_name_created_idx";--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_owner_name_created_idx" ON "tasks" USING btree ("owner_id","name","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);
