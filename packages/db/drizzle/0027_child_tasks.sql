-- Child tasks (issue 21): a handler's `ctx.run` / `ctx.runMany` submits tasks whose `parent_id` is
-- its own id (same tenant). While they run, the parent is WAITING with waiting_for
-- {kind: 'children', children: [ids]} and no run_after; the last child's end moves it back to
-- PENDING (`childrenDone`, below), and cancelling a parent cancels its unfinished children. No
-- foreign key: retention deletes finished tasks by age, a child possibly before its parent.
ALTER TABLE "tasks" ADD COLUMN "parent_id" uuid;--> statement-breakpoint
-- A task's children (the summary on every record, the list on its page, the parent's checks).
CREATE INDEX "tasks_parent_idx" ON "tasks" USING btree ("parent_id","created_at") WHERE "tasks"."parent_id" is not null;--> statement-breakpoint
-- The waker's pass over the parents waiting for children (a child's end wakes its parent at once;
-- the pass catches two last children ending at the same instant, each seeing the other unfinished).
CREATE INDEX "tasks_waiting_children_idx" ON "tasks" USING btree ("id") WHERE ("tasks"."waiting_for" ->> 'kind') = 'children';--> statement-breakpoint
-- The finishing trigger (0023, 0026) does two more things for child tasks, in the commit that ends a task:
-- - a child's end: its parent, WAITING for children, goes back to PENDING when no child of it is
--   unfinished any more (the transition `childrenDone`), to be handed out and resume;
-- - a CANCELLED task's unfinished children: a PENDING or WAITING one ends CANCELLED at once
--   (`cancelPending`; its own children follow, through this trigger), a RUNNING one gets its cancel
--   request (`requestCancel`: its worker ends it CANCELLED, see cancel-watch).
-- Statuses are compared as text (a value added by a migration in the migrator's one transaction,
-- 0024's WAITING on a new database, cannot be used there as the enum; a function body is only
-- planned when it runs, but the text form costs nothing and matches the rest).
CREATE OR REPLACE FUNCTION "tasker_task_finished"() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = 'auto' AS $$
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
  IF NEW."parent_id" IS NOT NULL THEN
    UPDATE "tasks" p SET "status" = 'PENDING', "version" = p."version" + 1, "updated_at" = now(),
      "waiting_for" = NULL
    WHERE p."id" = NEW."parent_id" AND p."status"::text = 'WAITING'
      AND (p."waiting_for" ->> 'kind') = 'children'
      AND NOT EXISTS (SELECT 1 FROM "tasks" c WHERE c."parent_id" = NEW."parent_id" AND c."finished_at" IS NULL);
  END IF;
  IF NEW."status"::text = 'CANCELLED' THEN
    UPDATE "tasks" c SET "status" = 'CANCELLED', "version" = c."version" + 1, "updated_at" = now(),
      "error" = jsonb_build_object('message', 'the task was cancelled: its parent task was cancelled',
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
