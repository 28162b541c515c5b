-- The PostgreSQL-only mode's queue is task_handouts itself (issue 23): a handout, written when the
-- dispatcher hands a task out, is the task's job until the task finishes (the finishing trigger
-- deletes it, as before). Workers take handouts with FOR UPDATE SKIP LOCKED, a batch at a time,
-- and hold them by a lease (locked_by, locked_until) that they renew; a lease that lapses is a
-- stalled job, handed out again, and failed (failed_reason) once it stalled too often. BullMQ's
-- PostgreSQL backend (schema bullmq) is no longer used: it cost a commit and 4 KB of WAL a task of
-- its own. In Redis mode the new columns keep their defaults (BullMQ on Redis holds the jobs).
ALTER TABLE "task_handouts"
  ADD COLUMN "job_priority" integer DEFAULT 0 NOT NULL,
  ADD COLUMN "run_at" timestamp (3) with time zone,
  ADD COLUMN "max_attempts" integer DEFAULT 1 NOT NULL,
  ADD COLUMN "attempts_made" integer DEFAULT 0 NOT NULL,
  ADD COLUMN "locked_by" text,
  ADD COLUMN "locked_until" timestamp (3) with time zone,
  ADD COLUMN "stalls" integer DEFAULT 0 NOT NULL,
  ADD COLUMN "failed_reason" text,
  ADD COLUMN "trace" jsonb;--> statement-breakpoint
-- The handouts of tasks running now, at the upgrade, were taken by workers of the previous release
-- (from BullMQ's tables): leased for five minutes, then handed out again if nobody ended them.
UPDATE "task_handouts" h SET "locked_by" = '(before 0036)', "locked_until" = now() + interval '5 minutes'
FROM "tasks" t WHERE t."id" = h."task_id" AND t."status" = 'RUNNING';--> statement-breakpoint
UPDATE "task_handouts" h SET "max_attempts" = t."max_attempts", "trace" = t."trace"
FROM "tasks" t WHERE t."id" = h."task_id";--> statement-breakpoint
-- Whether the whole queue is paused (PostgreSQL-only mode; with Redis, BullMQ's own pause): one row.
CREATE TABLE "queue_state" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"paused" boolean DEFAULT false NOT NULL,
	CONSTRAINT "queue_state_one_row" CHECK ("id")
);--> statement-breakpoint
INSERT INTO "queue_state" ("id", "paused") VALUES (true, false);
