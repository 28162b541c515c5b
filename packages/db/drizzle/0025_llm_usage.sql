-- LLM usage (issue 22). Every model call that reports usage is one row of `task_llm_calls`, the
-- ledger that usage reports (by day, task type, model) and budgets (per tenant, per day or month)
-- read by tenant and time. It has no foreign key to tasks: a month's spend outlives the retention
-- of the tasks that made it. The task carries its own sum in `usage` (and per attempt), written in
-- the transaction that records the call, so that its record, its events and its webhooks show it.
CREATE TABLE "task_llm_calls" (
  "id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
  "tenant_id" text NOT NULL,
  "task_id" uuid NOT NULL,
  "task_name" text NOT NULL,
  "attempt" integer NOT NULL,
  "base_url" text NOT NULL,
  "model" text NOT NULL,
  "prompt_tokens" integer NOT NULL,
  "completion_tokens" integer NOT NULL,
  "cost_usd" numeric(20, 10),
  "created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);--> statement-breakpoint
CREATE INDEX "task_llm_calls_tenant_created_idx" ON "task_llm_calls" USING btree ("tenant_id", "created_at");--> statement-breakpoint
CREATE INDEX "task_llm_calls_created_idx" ON "task_llm_calls" USING btree ("created_at");--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "usage" jsonb;
