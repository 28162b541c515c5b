-- The unique keys of tasks move to a small table of their own, task_keys (docs/partitioning.md,
-- step 4): a unique index of a partitioned tasks table could only be unique within a partition.
-- A key row names its holder by (task_id, task_created_at), the holder's partition to be.
--   idempotency  the owner's task with this idempotency_key, until the key's window passes (the
--                insert frees an expired key first, freeExpiredKeys) or the task is deleted;
--   singleton    the owner's unfinished task with this singleton_key (finished_at is null);
--   debounce     the owner's task with this debounce_key while it is PENDING from its submission
--                (it leaves PENDING, or its debounce_key goes: the key is free for good);
--   schedule     the task of a schedule's tick (key: the schedule id, '@', the tick's epoch ms),
--                until it is deleted.
-- The triggers below keep the table in step with the tasks, whatever statement writes them: a
-- keyed insert claims its keys first, and a key held already skips the row (the statement's
-- RETURNING lacks it; the caller reads the holder), as the unique indexes' ON CONFLICT DO NOTHING
-- did: a racing second insert waits for the first's commit, then finds the key taken. A task's end
-- frees its singleton key, a retry takes it again (unique_violation if another task holds it).
-- The idempotency, singleton and schedule-tick unique indexes of tasks stay until the table is
-- partitioned (step 6): both agree. tasks_owner_debounce_idx goes now: it held a key for any
-- PENDING task, so a debounced task going back to PENDING (a failed attempt's retry, a retry by
-- hand) while a newer one held its key failed with a unique violation.
CREATE TABLE "task_keys" (
	"owner_id" text NOT NULL,
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"task_id" uuid NOT NULL,
	"task_created_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "task_keys_pkey" PRIMARY KEY ("owner_id", "kind", "key"),
	CONSTRAINT "task_keys_kind_check" CHECK ("kind" IN ('idempotency', 'singleton', 'debounce', 'schedule'))
);--> statement-breakpoint
-- A task's keys (its end, its retry, retention), and keys by age (retention by partition, step 5).
CREATE INDEX "task_keys_task_idx" ON "task_keys" USING btree ("task_id");--> statement-breakpoint
CREATE INDEX "task_keys_created_idx" ON "task_keys" USING btree ("task_created_at");--> statement-breakpoint
-- Rows come and go with keyed tasks: vacuumed often, as task_handouts (0021).
ALTER TABLE "task_keys" SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000, autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);--> statement-breakpoint
-- A schedule tick's key: stable whatever the session's time zone.
CREATE FUNCTION "tasker_tick_key"(schedule_id uuid, scheduled_for timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$ SELECT schedule_id::text || '@' || (extract(epoch FROM scheduled_for) * 1000)::bigint::text $$;--> statement-breakpoint
-- Claims a new task's keys; a key held already skips the row (and frees what it claimed before).
CREATE FUNCTION "tasker_claim_task_keys"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  kinds text[] := '{}';
  keys text[] := '{}';
  i int;
BEGIN
  IF NEW."idempotency_key" IS NOT NULL THEN
    kinds := kinds || 'idempotency'::text; keys := keys || NEW."idempotency_key";
  END IF;
  IF NEW."singleton_key" IS NOT NULL AND NEW."finished_at" IS NULL THEN
    kinds := kinds || 'singleton'::text; keys := keys || NEW."singleton_key";
  END IF;
  IF NEW."debounce_key" IS NOT NULL AND NEW."status"::text = 'PENDING' THEN
    kinds := kinds || 'debounce'::text; keys := keys || NEW."debounce_key";
  END IF;
  IF NEW."schedule_id" IS NOT NULL THEN
    kinds := kinds || 'schedule'::text; keys := keys || "tasker_tick_key"(NEW."schedule_id", NEW."scheduled_for");
  END IF;
  FOR i IN 1 .. coalesce(array_length(kinds, 1), 0) LOOP
    INSERT INTO "task_keys" ("owner_id", "kind", "key", "task_id", "task_created_at")
      VALUES (NEW."owner_id", kinds[i], keys[i], NEW."id", NEW."created_at")
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      DELETE FROM "task_keys" WHERE "task_id" = NEW."id";
      RETURN NULL;
    END IF;
  END LOOP;
  RETURN NEW;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_claim_keys" BEFORE INSERT ON "tasks"
  FOR EACH ROW WHEN (NEW."idempotency_key" IS NOT NULL OR NEW."singleton_key" IS NOT NULL
                     OR NEW."debounce_key" IS NOT NULL OR NEW."schedule_id" IS NOT NULL)
  EXECUTE FUNCTION "tasker_claim_task_keys"();--> statement-breakpoint
-- A task's end frees its singleton key and a retry takes it again; leaving PENDING (or losing its
-- debounce_key, as a wait does) frees its debounce key.
CREATE FUNCTION "tasker_update_task_keys"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  holder uuid;
BEGIN
  IF OLD."singleton_key" IS NOT NULL AND OLD."finished_at" IS NULL AND NEW."finished_at" IS NOT NULL THEN
    DELETE FROM "task_keys" WHERE "task_id" = OLD."id" AND "kind" = 'singleton';
  END IF;
  IF NEW."singleton_key" IS NOT NULL AND OLD."finished_at" IS NOT NULL AND NEW."finished_at" IS NULL THEN
    INSERT INTO "task_keys" ("owner_id", "kind", "key", "task_id", "task_created_at")
      VALUES (NEW."owner_id", 'singleton', NEW."singleton_key", NEW."id", NEW."created_at")
      ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
      SELECT "task_id" INTO holder FROM "task_keys"
        WHERE "owner_id" = NEW."owner_id" AND "kind" = 'singleton' AND "key" = NEW."singleton_key";
      RAISE EXCEPTION 'singleton key % of tenant % is held by unfinished task %', NEW."singleton_key", NEW."owner_id", holder
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'task_keys_pkey', DETAIL = coalesce(holder::text, '');
    END IF;
  END IF;
  IF OLD."debounce_key" IS NOT NULL AND OLD."status"::text = 'PENDING'
     AND (NEW."status"::text <> 'PENDING' OR NEW."debounce_key" IS DISTINCT FROM OLD."debounce_key") THEN
    DELETE FROM "task_keys" WHERE "task_id" = OLD."id" AND "kind" = 'debounce';
  END IF;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_update_keys" AFTER UPDATE ON "tasks"
  FOR EACH ROW WHEN (
    (NEW."singleton_key" IS NOT NULL AND (OLD."finished_at" IS NULL) <> (NEW."finished_at" IS NULL))
    OR (OLD."debounce_key" IS NOT NULL AND OLD."status"::text = 'PENDING'
        AND (NEW."status"::text <> 'PENDING' OR NEW."debounce_key" IS DISTINCT FROM OLD."debounce_key")))
  EXECUTE FUNCTION "tasker_update_task_keys"();--> statement-breakpoint
DROP INDEX "tasks_owner_debounce_idx";--> statement-breakpoint
-- The keys held now (the triggers above hold tasks' writes off until this commits). Two unfinished
-- singleton holders or two PENDING debounce holders cannot exist (the unique indexes until now).
INSERT INTO "task_keys" ("owner_id", "kind", "key", "task_id", "task_created_at")
  SELECT "owner_id", 'idempotency', "idempotency_key", "id", "created_at" FROM "tasks"
  WHERE "idempotency_key" IS NOT NULL
  UNION ALL
  SELECT "owner_id", 'singleton', "singleton_key", "id", "created_at" FROM "tasks"
  WHERE "singleton_key" IS NOT NULL AND "finished_at" IS NULL
  UNION ALL
  SELECT "owner_id", 'debounce', "debounce_key", "id", "created_at" FROM "tasks"
  WHERE "debounce_key" IS NOT NULL AND "status"::text = 'PENDING'
  UNION ALL
  SELECT "owner_id", 'schedule', "tasker_tick_key"("schedule_id", "scheduled_for"), "id", "created_at" FROM "tasks"
  WHERE "schedule_id" IS NOT NULL
  ON CONFLICT DO NOTHING;
