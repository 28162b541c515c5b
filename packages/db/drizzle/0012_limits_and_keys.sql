CREATE TABLE "task_type_limits" (
	"name" text PRIMARY KEY NOT NULL,
	"max_running" integer,
	"max_queued" integer,
	"starts_per_minute" integer,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"max_running_per_key" integer
);
--> statement-breakpoint
CREATE TABLE "tenant_limits" (
	"tenant_id" text PRIMARY KEY NOT NULL,
	"max_running" integer,
	"max_queued" integer,
	"starts_per_minute" integer,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "concurrency_key" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "singleton_key" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "debounce_key" text;--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_owner_singleton_idx" ON "tasks" USING btree ("owner_id","singleton_key") WHERE "tasks"."singleton_key" is not null and "tasks"."status" in ('PENDING', 'RUNNING');--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_owner_debounce_idx" ON "tasks" USING btree ("owner_id","debounce_key") WHERE "tasks"."debounce_key" is not null and "tasks"."status" = 'PENDING';