ALTER TABLE "tasks" ADD COLUMN "queued_at" timestamp (3) with time zone;--> statement-breakpoint
CREATE INDEX "tasks_ready_idx" ON "tasks" USING btree ("owner_id","priority" DESC NULLS FIRST,"created_at","id") WHERE "tasks"."status" = 'PENDING' and "tasks"."queued_at" is null;--> statement-breakpoint
CREATE INDEX "tasks_holding_idx" ON "tasks" USING btree ("owner_id","name","concurrency_key") WHERE "tasks"."queued_at" is not null and "tasks"."status" in ('PENDING', 'RUNNING');--> statement-breakpoint
-- Announce a change of the task (its version moves), not of its delivery: handing a task to the
-- queue (queued_at) wakes no watcher and no dispatcher.
DROP TRIGGER "tasks_announce" ON "tasks";--> statement-breakpoint
CREATE TRIGGER "tasks_announce_insert" AFTER INSERT ON "tasks"
  FOR EACH ROW EXECUTE FUNCTION "tasker_announce_task"();--> statement-breakpoint
CREATE TRIGGER "tasks_announce_update" AFTER UPDATE ON "tasks"
  FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION "tasker_announce_task"();--> statement-breakpoint
-- Rows unfinished before the dispatcher existed already have their job: they hold their slot. After
-- the new triggers, which announce only a moved version: this update announces nothing (before,
-- every unfinished row would have been NOTIFYed with its whole JSON in this one transaction).
UPDATE "tasks" SET "queued_at" = now() WHERE "status" in ('PENDING', 'RUNNING');
