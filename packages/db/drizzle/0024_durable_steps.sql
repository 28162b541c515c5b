-- Durable steps (issue 21). A handler's `ctx.step(id, fn)` records each step's result in
-- task_steps, so that a later run of the task (a retry, a crash, a resume) answers a finished step
-- from here instead of running it again. `ctx.sleep` suspends the task: WAITING, with what it waits
-- for in `waiting_for`, until `run_after`; it then goes back to PENDING and the dispatcher hands it
-- out again. An enum value added by ALTER TYPE cannot be used in the transaction that adds it, and
-- the migrator runs every pending migration in one (on a new database, 0011's EXPIRED too): nothing
-- below names WAITING or EXPIRED as a task_status. The finished check compares the status as text;
-- the singleton index names finished_at instead of a list of statuses.
ALTER TYPE "public"."task_status" ADD VALUE 'WAITING' AFTER 'RUNNING';--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "waiting_for" jsonb;--> statement-breakpoint
-- finished_at is set exactly when the status is terminal; WAITING, like PENDING and RUNNING, is not.
-- Stated with the terminal statuses, so that a new unfinished status needs no new check. NOT VALID,
-- as in 0011: rows written before are not re-read; every new write is checked.
ALTER TABLE "tasks" DROP CONSTRAINT "tasks_finished_check";--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_finished_check" CHECK (("tasks"."finished_at" is null) = ("tasks"."status"::text not in ('COMPLETED', 'FAILED', 'CANCELLED', 'EXPIRED'))) NOT VALID;--> statement-breakpoint
-- One unfinished task per (tenant, singleton key): a WAITING one holds its key too.
DROP INDEX "tasks_owner_singleton_idx";--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_owner_singleton_idx" ON "tasks" USING btree ("owner_id","singleton_key") WHERE "tasks"."singleton_key" is not null and "tasks"."finished_at" is null;--> statement-breakpoint
-- The waker: WAITING tasks by the time their wait ends, soonest first. waiting_for is set exactly
-- while a task is WAITING (the transitions wait, wake and cancelPending keep it so).
CREATE INDEX "tasks_waiting_idx" ON "tasks" USING btree ("run_after") WHERE "tasks"."waiting_for" is not null;--> statement-breakpoint
-- One row per step a task's handler reached: `seq` its place in the handler's order (0 first),
-- `output` its JSON result once completed, `error` the last failure of a failed one. Deleted with
-- its task by retention (pruneFinished).
CREATE TABLE "task_steps" (
	"task_id" uuid NOT NULL,
	"step_id" text NOT NULL,
	"seq" integer NOT NULL,
	"status" text NOT NULL,
	"output" jsonb,
	"error" jsonb,
	"started_at" timestamp (3) with time zone NOT NULL,
	"finished_at" timestamp (3) with time zone,
	CONSTRAINT "task_steps_pkey" PRIMARY KEY("task_id","step_id"),
	CONSTRAINT "task_steps_status_check" CHECK ("task_steps"."status" in ('completed', 'failed', 'waiting'))
);
