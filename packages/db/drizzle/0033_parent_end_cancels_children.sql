-- A parent that ends FAILED or EXPIRED cancels its unfinished children, as a CANCELLED one already
-- did (0027). Nothing reads a child's result but its parent, which will not run again unless it is
-- retried, and a retry is refused while a child is unfinished (`retry`'s guard, 409
-- CHILDREN_RUNNING): a FAILED parent whose children ran on could be neither retried (until every
-- child had ended by itself) nor cancelled (it is finished). Now, in the commit that ends the
-- parent, its PENDING and WAITING children end CANCELLED (their own children following, through
-- this trigger) and its RUNNING ones get their cancel request; the retry is possible once those
-- have stopped. The error says which end of the parent cancelled them. The rest of the function
-- is 0027's; it keeps SET plan_cache_mode = 'auto' (0026).
CREATE OR REPLACE FUNCTION "tasker_task_finished"() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = 'auto' AS $$
DECLARE
  ev text := CASE NEW.status
    WHEN 'COMPLETED' THEN 'task.completed'
    WHEN 'FAILED' THEN 'task.failed'
    WHEN 'CANCELLED' THEN 'task.cancelled'
    WHEN 'EXPIRED' THEN 'task.expired'
  END;
  parent_end text := CASE NEW.status::text
    WHEN 'CANCELLED' THEN 'was cancelled'
    WHEN 'FAILED' THEN 'failed'
    WHEN 'EXPIRED' THEN 'expired'
  END;
BEGIN
  -- A finished task holds no slot: its handout goes in the commit that ends it.
  DELETE FROM "task_handouts" WHERE "task_id" = NEW."id";
  IF NEW."parent_id" IS NOT NULL THEN
    UPDATE "tasks" p SET "status" = 'PENDING', "version" = p."version" + 1, "updated_at" = now(),
      "waiting_for" = NULL
    WHERE p."id" = NEW."parent_id" AND p."status"::text = 'WAITING'
      AND (p."waiting_for" ->> 'kind') = 'children'
      AND NOT EXISTS (SELECT 1 FROM "tasks" c WHERE c."parent_id" = NEW."parent_id" AND c."finished_at" IS NULL);
  END IF;
  IF parent_end IS NOT NULL THEN
    UPDATE "tasks" c SET "status" = 'CANCELLED', "version" = c."version" + 1, "updated_at" = now(),
      "error" = jsonb_build_object('message', 'the task was cancelled: its parent task ' || parent_end,
        'name', 'CancelledError', 'code', 'CANCELLED', 'at', to_jsonb(now())),
      "cancel_requested_at" = now(), "finished_at" = now(), "waiting_for" = NULL
    WHERE c."parent_id" = NEW."id" AND c."status"::text IN ('PENDING', 'WAITING');
    UPDATE "tasks" c SET "cancel_requested_at" = now(), "version" = c."version" + 1, "updated_at" = now()
    WHERE c."parent_id" = NEW."id" AND c."status"::text = 'RUNNING' AND c."cancel_requested_at" IS NULL;
  END IF;
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
$$;
