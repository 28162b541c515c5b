-- Completion webhooks (issue 20). A tenant's webhooks (`POST /webhooks`), the per-task `webhook_url`
-- of a submission, the tenant's secret that signs those, and the deliveries: stored by a trigger in
-- the very transaction that finishes the task, so that a delivery exists for every finished task
-- whatever process dies afterwards (at-least-once), then sent and retried by the workers.
CREATE TABLE "webhooks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"url" text NOT NULL,
	"events" text[] NOT NULL,
	"task_names" text[],
	"secret" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "webhooks_tenant_idx" ON "webhooks" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE TABLE "tenant_webhook_secrets" (
	"tenant_id" text PRIMARY KEY NOT NULL,
	"secret" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"webhook_id" uuid,
	"url" text NOT NULL,
	"event" text NOT NULL,
	"task_id" uuid NOT NULL,
	"body" text,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"last_status" integer,
	"last_error" text,
	"log" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_deliveries_status_check" CHECK ("webhook_deliveries"."status" in ('pending', 'delivered', 'failed'))
);
--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" USING btree ("next_attempt_at") WHERE "webhook_deliveries"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "webhook_deliveries_webhook_idx" ON "webhook_deliveries" USING btree ("webhook_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "webhook_deliveries_task_idx" ON "webhook_deliveries" USING btree ("task_id");--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "webhook_url" text;--> statement-breakpoint
-- One delivery per matching webhook of the task's tenant, and one for the task's own webhook_url,
-- inserted when the row becomes finished (finished_at from null to a time: tasks_finished_check
-- ties it to a terminal status). A retried task that finishes again gets new deliveries.
CREATE FUNCTION "tasker_enqueue_webhooks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ev text := CASE NEW.status
    WHEN 'COMPLETED' THEN 'task.completed'
    WHEN 'FAILED' THEN 'task.failed'
    WHEN 'CANCELLED' THEN 'task.cancelled'
    WHEN 'EXPIRED' THEN 'task.expired'
  END;
BEGIN
  IF ev IS NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO "webhook_deliveries" ("id", "tenant_id", "webhook_id", "url", "event", "task_id")
    SELECT gen_random_uuid(), NEW.owner_id, w.id, w.url, ev, NEW.id
    FROM "webhooks" w
    WHERE w.tenant_id = NEW.owner_id AND ev = ANY (w.events)
      AND (w.task_names IS NULL OR NEW.name = ANY (w.task_names));
  IF NEW.webhook_url IS NOT NULL THEN
    INSERT INTO "webhook_deliveries" ("id", "tenant_id", "webhook_id", "url", "event", "task_id")
      VALUES (gen_random_uuid(), NEW.owner_id, NULL, NEW.webhook_url, ev, NEW.id);
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_webhooks" AFTER UPDATE ON "tasks"
  FOR EACH ROW WHEN (OLD.finished_at IS NULL AND NEW.finished_at IS NOT NULL)
  EXECUTE FUNCTION "tasker_enqueue_webhooks"();
