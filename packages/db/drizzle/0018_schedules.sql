CREATE TABLE "schedules" (
	"id" uuid PRIMARY KEY NOT NULL,
	"owner_id" text NOT NULL,
	"key" text,
	"name" text NOT NULL,
	"input" jsonb NOT NULL,
	"cron" text NOT NULL,
	"timezone" text DEFAULT 'UTC' NOT NULL,
	"catch_up" text DEFAULT 'latest' NOT NULL,
	"paused" boolean DEFAULT false NOT NULL,
	"priority" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer,
	"timeout_ms" integer,
	"ttl_ms" integer,
	"concurrency_key" text,
	"next_fire_at" timestamp (3) with time zone,
	"last_fire_at" timestamp (3) with time zone,
	"skipped_runs" integer DEFAULT 0 NOT NULL,
	"last_skipped_for" timestamp (3) with time zone,
	"last_skip_reason" text,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "schedules_catch_up_check" CHECK ("schedules"."catch_up" in ('none', 'latest', 'all'))
);
--> statement-breakpoint
CREATE UNIQUE INDEX "schedules_owner_key_idx" ON "schedules" USING btree ("owner_id","key") WHERE "schedules"."key" is not null;--> statement-breakpoint
CREATE INDEX "schedules_owner_created_idx" ON "schedules" USING btree ("owner_id","created_at","id");--> statement-breakpoint
CREATE INDEX "schedules_due_idx" ON "schedules" USING btree ("next_fire_at") WHERE "schedules"."paused" = false;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "schedule_id" uuid;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "scheduled_for" timestamp (3) with time zone;--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_schedule_tick_idx" ON "tasks" USING btree ("schedule_id","scheduled_for") WHERE "tasks"."schedule_id" is not null;
