-- tasker:no-transaction
-- Built CONCURRENTLY, outside a transaction (the first line; see 0009 and packages/db/README.md):
-- writes to tasks go on while it builds. Rewritten after it shipped, which changes nothing for a
-- database that applied it (see 0009).
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_finished_idx" ON "tasks" USING btree ("finished_at") WHERE "tasks"."status" in ('COMPLETED', 'FAILED', 'CANCELLED');
