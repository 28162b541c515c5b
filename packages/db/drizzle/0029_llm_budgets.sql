-- LLM budgets and the identical-prompt cache (issue 22).
-- A tenant's budgets beside its fair-share limits: tokens (prompt + completion) per UTC day and US
-- dollars per UTC month; null: none. Read with the tenant's limits (one row, at most 1 s stale).
ALTER TABLE "tenant_limits" ADD COLUMN "llm_tokens_per_day" bigint;--> statement-breakpoint
ALTER TABLE "tenant_limits" ADD COLUMN "llm_cost_per_month_usd" numeric(20, 10);--> statement-breakpoint
-- A call answered from the cache is in the ledger too (its tokens as the stored reply used them, at
-- no cost: it counts in no budget), marked cached.
ALTER TABLE "task_llm_calls" ADD COLUMN "cached" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Stored replies, per tenant, by a SHA-256 of the model, the messages and the parameters of the
-- call: one tenant's entries never answer another's (the tenant is in the key). Bounded by each
-- entry's expiry (a sweep deletes the expired) and a cap of entries per tenant.
CREATE TABLE "llm_cache" (
  "tenant_id" text NOT NULL,
  "key" text NOT NULL,
  "model" text NOT NULL,
  "reply" text NOT NULL,
  "prompt_tokens" integer NOT NULL,
  "completion_tokens" integer NOT NULL,
  "created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
  "expires_at" timestamp (3) with time zone NOT NULL,
  CONSTRAINT "llm_cache_pkey" PRIMARY KEY ("tenant_id", "key")
);--> statement-breakpoint
CREATE INDEX "llm_cache_expires_idx" ON "llm_cache" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "llm_cache_tenant_created_idx" ON "llm_cache" USING btree ("tenant_id", "created_at");--> statement-breakpoint
-- A submission's cache_ttl_ms: its model calls may be answered from the cache for this long (null:
-- its task type's llm.cacheTtlMs, else no cache).
ALTER TABLE "tasks" ADD COLUMN "llm_cache_ttl_ms" integer;
