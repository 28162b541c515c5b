-- tasker:no-transaction
-- Partitioning task_steps in place, 2 of 3: what the switch (0042) needs, made while reads and
-- writes go on:
--   task_steps_key_idx     the partitioned table's primary key is (task_id, step_id,
--                          task_created_at): its index on the first partition, built concurrently;
--   task_steps_legacy_range (0040) validated: the attach then needs no scan.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "task_steps_key_idx" ON "task_steps" USING btree ("task_id","step_id","task_created_at");--> statement-breakpoint
ALTER TABLE "task_steps" VALIDATE CONSTRAINT "task_steps_legacy_range";
