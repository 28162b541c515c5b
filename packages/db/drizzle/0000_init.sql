CREATE TYPE "public"."task_status" AS ENUM('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');--> statement-breakpoint
CREATE TABLE "tasks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"owner_id" text DEFAULT 'default' NOT NULL,
	"name" text NOT NULL,
	"input" jsonb NOT NULL,
	"status" "task_status" DEFAULT 'PENDING' NOT NULL,
	"output" jsonb,
	"error" jsonb,
	"attempt_errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"progress" jsonb,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer DEFAULT 1 NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"timeout_ms" integer,
	"idempotency_key" text,
	"run_after" timestamp (3) with time zone,
	"cancel_requested_at" timestamp (3) with time zone,
	"worker_id" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp (3) with time zone,
	"finished_at" timestamp (3) with time zone,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "tasks_owner_created_idx" ON "tasks" USING btree ("owner_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "tasks_unfinished_idx" ON "tasks" USING btree ("updated_at") WHERE "tasks"."status" in ('PENDING', 'RUNNING');--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_owner_idempotency_idx" ON "tasks" USING btree ("owner_id","idempotency_key") WHERE "tasks"."idempotency_key" is not null;