CREATE INDEX "tasks_pending_name_idx" ON "tasks" USING btree ("name") WHERE "tasks"."status" = 'PENDING';--> statement-breakpoint
-- 0011 added tasks_finished_check NOT VALID (every new write checked); now the rows written before
-- are checked too. VALIDATE takes a SHARE UPDATE EXCLUSIVE lock: reads and writes go on meanwhile.
ALTER TABLE "tasks" VALIDATE CONSTRAINT "tasks_finished_check";
