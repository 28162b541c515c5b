-- Bulk cancel and retry by filter (issue 20): one row per operation, its progress written with each
-- chunk of tasks it changes (in the chunk's own transaction), and the lease of the worker running it.
CREATE TABLE "bulk_operations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"action" text NOT NULL,
	"filter" jsonb NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"matched" integer DEFAULT 0 NOT NULL,
	"done" integer DEFAULT 0 NOT NULL,
	"error" text,
	"created_by" uuid,
	"cursor_created_at" timestamp (3) with time zone,
	"cursor_id" uuid,
	"runner" text,
	"lease_until" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp (3) with time zone,
	CONSTRAINT "bulk_operations_action_check" CHECK ("bulk_operations"."action" in ('cancel', 'retry')),
	CONSTRAINT "bulk_operations_status_check" CHECK ("bulk_operations"."status" in ('running', 'done', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "bulk_operations" ADD CONSTRAINT "bulk_operations_created_by_api_keys_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."api_keys"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "bulk_operations_tenant_created_idx" ON "bulk_operations" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "bulk_operations_running_idx" ON "bulk_operations" USING btree ("created_at") WHERE "bulk_operations"."status" = 'running';
