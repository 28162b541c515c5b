-- One row trigger for what a task's ending does, instead of two: the handout's delete (0021,
-- `tasks_forget_handout`) and the completion webhooks' deliveries (0019, `tasks_webhooks`) were two
-- plpgsql calls per finished row, in every finishing transaction (for tenants with no webhook too).
-- `tasks_finished` does both in one call. Both fire on the same change: finished_at from null to a
-- time, which tasks_finished_check ties to a terminal status, so the statement sets status (the
-- column list lets every statement that does not set status skip the WHEN altogether).
CREATE FUNCTION "tasker_task_finished"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  ev text := CASE NEW.status
    WHEN 'COMPLETED' THEN 'task.completed'
    WHEN 'FAILED' THEN 'task.failed'
    WHEN 'CANCELLED' THEN 'task.cancelled'
    WHEN 'EXPIRED' THEN 'task.expired'
  END;
BEGIN
  -- A finished task holds no slot: its handout goes in the commit that ends it.
  DELETE FROM "task_handouts" WHERE "task_id" = NEW."id";
  IF ev IS NULL THEN
    RETURN NULL;
  END IF;
  -- One delivery per matching webhook of the task's tenant, and one for its own webhook_url.
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
DROP TRIGGER "tasks_webhooks" ON "tasks";--> statement-breakpoint
DROP TRIGGER "tasks_forget_handout" ON "tasks";--> statement-breakpoint
DROP FUNCTION "tasker_enqueue_webhooks"();--> statement-breakpoint
DROP FUNCTION "tasker_forget_handout"();--> statement-breakpoint
CREATE TRIGGER "tasks_finished" AFTER UPDATE OF "status" ON "tasks"
  FOR EACH ROW WHEN (OLD."finished_at" IS NULL AND NEW."finished_at" IS NOT NULL)
  EXECUTE FUNCTION "tasker_task_finished"();
