-- EXPIRED (a task not started within its ttl_ms), the expiry columns, and the finished index keyed on
-- finished_at instead of a status list: the new enum value cannot be used in the transaction that adds
-- it, and no index or check needs to name it. NOT VALID: rows written before are not re-read (on a
-- large table that would hold the lock for the whole scan); every new write is checked.
ALTER TYPE "public"."task_status" ADD VALUE 'EXPIRED';--> statement-breakpoint
DROP INDEX "tasks_finished_idx";--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "ttl_ms" integer;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "expires_at" timestamp (3) with time zone;--> statement-breakpoint
CREATE INDEX "tasks_expiry_idx" ON "tasks" USING btree ("expires_at") WHERE "tasks"."status" = 'PENDING' and "tasks"."expires_at" is not null;--> statement-breakpoint
CREATE INDEX "tasks_finished_idx" ON "tasks" USING btree ("finished_at") WHERE "tasks"."finished_at" is not null;--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_finished_check" CHECK (("tasks"."finished_at" is null) = ("tasks"."status" in ('PENDING', 'RUNNING'))) NOT VALID;