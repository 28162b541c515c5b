-- The identical-prompt cache's token columns go: nothing reads them (a hit is recorded as a call of
-- 0 tokens and cost 0, marked cached; what the first call used is in the ledger, task_llm_calls).
-- A worker of the release before this one writes them: its cache writes fail then, and a failed
-- cache write is a miss kept (best effort), so a rolling deploy loses cached replies, nothing else.
ALTER TABLE "llm_cache" DROP COLUMN "prompt_tokens";--> statement-breakpoint
ALTER TABLE "llm_cache" DROP COLUMN "completion_tokens";
