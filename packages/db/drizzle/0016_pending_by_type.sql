-- tasker:no-transaction
-- Built CONCURRENTLY, outside a transaction (the first line; see 0009 and packages/db/README.md):
-- writes to tasks go on while it builds. Rewritten after it shipped, which changes nothing for a
-- database that applied it (see 0009).
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_pending_name_idx" ON "tasks" USING btree ("name") WHERE "tasks"."status" = 'PENDING';--> statement-breakpoint
-- 0011 added tasks_finished_check NOT VALID (every new write checked); now the rows written before
-- are checked too. VALIDATE takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on meanwhile.
-- It needs no transaction of its own, and validating a valid constraint again does nothing.
ALTER TABLE "tasks" VALIDATE CONSTRAINT "tasks_finished_check";
