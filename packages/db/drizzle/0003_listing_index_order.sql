DROP INDEX "tasks_owner_created_idx";--> statement-breakpoint
DROP INDEX "tasks_owner_status_created_idx";--> statement-breakpoint
DROP INDEX "tasks_owner_name_created_idx";--> statement-breakpoint
CREATE INDEX "tasks_owner_created_idx" ON "tasks" USING btree ("owner_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "tasks_owner_status_created_idx" ON "tasks" USING btree ("owner_id","status","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "tasks_owner_name_created_idx" ON "tasks" USING btree ("owner_id","name","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);