-- Wait tokens (issue 21): `ctx.createToken` / `ctx.waitForToken` suspend a task until someone
-- completes its token (POST /tokens/{id}/complete with a key, or its callback URL without one) or
-- its timeout passes. One row per token: the task and the step (`$token:N`) that made it, the
-- tenant (the task's), the SHA-256 of the callback URL's secret (the secret itself is shown to the
-- handler only), when it times out, and how it ended. status: waiting (open), completed (output
-- set, completed_at), timed_out (its timeout passed before a completion: the run that found it so
-- marked it). A token of a finished task (cancelled while it waited) cannot be completed; a retry
-- of the task waits for it again, until its timeout.
CREATE TABLE "wait_tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"owner_id" text NOT NULL,
	"task_id" uuid NOT NULL,
	"step_id" text NOT NULL,
	"secret_hash" text NOT NULL,
	"status" text DEFAULT 'waiting' NOT NULL,
	"output" jsonb,
	"timeout_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp (3) with time zone,
	CONSTRAINT "wait_tokens_status_check" CHECK ("wait_tokens"."status" in ('waiting', 'completed', 'timed_out'))
);--> statement-breakpoint
-- The callback URL's lookup: by the hash of its secret.
CREATE UNIQUE INDEX "wait_tokens_secret_idx" ON "wait_tokens" USING btree ("secret_hash");--> statement-breakpoint
-- One token per step of a task; also a task's tokens (a cancel ends them, retention deletes them).
CREATE UNIQUE INDEX "wait_tokens_task_step_idx" ON "wait_tokens" USING btree ("task_id","step_id");
