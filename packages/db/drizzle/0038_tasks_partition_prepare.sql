-- tasker:no-transaction
-- Partitioning tasks in place, 2 of 3: what the switch (0039) needs from the table as it is, made
-- while reads and writes go on, so that the switch only changes the catalog under its lock.
--   tasks_id_created_idx   the partitioned table's primary key is (id, created_at), the partition
--                          key included: its index on this first partition, built concurrently;
--   tasks_schedule_tick_plain_idx  the schedule-tick index stays on the partitioned table, no
--                          longer unique (a unique index of a partitioned table is unique only
--                          within a partition: task_keys decides since 0035), as this twin;
--   the finished check (NOT VALID since 0024) and the cutover (0037) validated: a partition must
--   hold its parent's checks valid, and a valid range check spares the ATTACH its scan.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "tasks_id_created_idx" ON "tasks" USING btree ("id","created_at");--> statement-breakpoint
CREATE INDEX CONCURRENTLY IF NOT EXISTS "tasks_schedule_tick_plain_idx" ON "tasks" USING btree ("schedule_id","scheduled_for") WHERE "schedule_id" IS NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" VALIDATE CONSTRAINT "tasks_finished_check";--> statement-breakpoint
ALTER TABLE "tasks" VALIDATE CONSTRAINT "tasks_legacy_range";
