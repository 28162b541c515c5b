-- Handing a task to the queue no longer rewrites its row. Marking `tasks.queued_at` was a full
-- update of a wide row (a new tuple, an entry in each of its indexes, the input's GIN index
-- included): the dearest write of a task's life. A handout is now a narrow row of its own in
-- task_handouts, inserted when the dispatcher adds the task's job and deleted when the task finishes
-- (a trigger below) or is taken back (a paused type), so that the tasks that hold a slot are the
-- handouts of unfinished tasks, and the tasks waiting for their turn are the PENDING ones without one.
CREATE TABLE "task_handouts" (
	"task_id" uuid PRIMARY KEY NOT NULL,
	"owner_id" text NOT NULL,
	"name" text NOT NULL,
	"concurrency_key" text NOT NULL,
	"handed_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);--> statement-breakpoint
-- A queue-like table (a row per task in flight, inserted and deleted at the task rate): vacuum it
-- often, whatever its size, so that dead rows never pile up between passes.
ALTER TABLE "task_handouts" SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000, autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);--> statement-breakpoint
INSERT INTO "task_handouts" ("task_id", "owner_id", "name", "concurrency_key", "handed_at")
  SELECT "id", "owner_id", "name", coalesce("concurrency_key", "owner_id"), "queued_at" FROM "tasks"
  WHERE "queued_at" IS NOT NULL AND "status" IN ('PENDING', 'RUNNING');--> statement-breakpoint
-- A finished task holds no slot: its handout goes in the same commit as the status that ends it,
-- whichever statement ends it (complete, fail, cancel, expire).
CREATE FUNCTION "tasker_forget_handout"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM "task_handouts" WHERE "task_id" = NEW."id";
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_forget_handout" AFTER UPDATE OF "status" ON "tasks"
  FOR EACH ROW WHEN (OLD."finished_at" IS NULL AND NEW."finished_at" IS NOT NULL)
  EXECUTE FUNCTION "tasker_forget_handout"();--> statement-breakpoint
DROP INDEX "tasks_holding_idx";--> statement-breakpoint
DROP INDEX "tasks_ready_idx";--> statement-breakpoint
ALTER TABLE "tasks" DROP COLUMN "queued_at";--> statement-breakpoint
-- The dispatcher reads each tenant's PENDING tasks in the order they go, skipping those handed out
-- (at most the queue's buffer, plus retries waiting for their backoff).
CREATE INDEX "tasks_ready_idx" ON "tasks" USING btree ("owner_id","priority" DESC NULLS FIRST,"created_at","id") WHERE "tasks"."status" = 'PENDING';--> statement-breakpoint
-- The dispatcher's wake-up only for statements that can let a task go: a new task (INSERT), a status
-- change (a slot freed, a retry, a claim that drains the queue's buffer) or a new start (run_after).
-- Statements that set neither (progress, a cancel request) no longer NOTIFY: each NOTIFY
-- serialises its commit with every other notifying commit.
DROP TRIGGER "tasks_wake_dispatcher" ON "tasks";--> statement-breakpoint
CREATE TRIGGER "tasks_wake_dispatcher" AFTER INSERT OR UPDATE OF "status", "run_after" ON "tasks"
  FOR EACH STATEMENT EXECUTE FUNCTION "tasker_wake_dispatcher"();
