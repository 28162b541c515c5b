-- Partitioning tasks in place, 3 of 3: the switch (docs/partitioning.md, "Migrating an existing
-- table"). One transaction, catalog changes only: tasks is renamed tasks_legacy, a tasks
-- PARTITION BY RANGE (created_at) is made in its place with the same columns, defaults, checks,
-- indexes and triggers (their definitions read from the table itself, so they are what the
-- earlier migrations made), tasks_legacy is attached as its first partition, [MINVALUE, cutover),
-- without a scan (0038 validated its range check) and without an index build (each parent index
-- adopts the legacy index of the same definition), and the weeks from the cutover to four weeks
-- ahead are made (the worker's sweeper keeps four weeks ahead from then on, TaskPartitions). On an
-- empty table (a new installation) the cutover is the current week's Monday instead, so that new
-- tasks go to weekly partitions at once.
--   The primary key becomes (id, created_at): a unique index of a partitioned table must hold the
--   partition key. The idempotency, singleton and schedule-tick unique indexes go: each would be
--   unique only within a week; task_keys (0035) decides, as it has since then. The tick index
--   stays, not unique, for a schedule's latest runs.
--   tasker_task_finished finds the parent by its id's time (tasker_uuid_time) and the children
--   after it, so that its statements read one partition, not all of them.
CREATE FUNCTION tasker_uuid_time(id uuid) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  -- A UUIDv7's first 48 bits are its Unix time in milliseconds; null for any other version.
  SELECT CASE WHEN substr(id::text, 15, 1) = '7'
    THEN timestamptz 'epoch' + ('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint * interval '1 millisecond'
  END
$$;--> statement-breakpoint
DO $$
DECLARE
  cutover timestamptz;
  ahead timestamptz := (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '5 weeks') AT TIME ZONE 'UTC';
  week timestamptz;
  week_name text;
  storage text;
  r record;
  index_defs text[];
  trigger_defs text[];
  check_defs text[];
  def text;
BEGIN
  IF (SELECT relkind FROM pg_class WHERE oid = 'tasks'::regclass) = 'p' THEN
    RETURN;
  END IF;
  LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE;
  SELECT obj_description(oid, 'pg_constraint')::timestamptz INTO cutover
  FROM pg_constraint WHERE conrelid = 'tasks'::regclass AND conname = 'tasks_legacy_range';
  IF cutover IS NULL THEN
    RAISE EXCEPTION 'tasks_legacy_range (migration 0037) is missing or has no cutover';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tasks) THEN
    cutover := date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  END IF;
  IF cutover < now() - interval '1 minute' AND EXISTS (SELECT 1 FROM tasks WHERE created_at >= cutover) THEN
    RAISE EXCEPTION 'tasks holds rows created after the cutover %: 0037 ran long before 0039', cutover;
  END IF;

  -- What the parent keeps, read before the rename (the definitions name public.tasks).
  SELECT coalesce(array_agg(pg_get_indexdef(i.indexrelid) ORDER BY c.relname), '{}') INTO index_defs
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE i.indrelid = 'tasks'::regclass AND NOT i.indisunique AND c.relname <> 'tasks_schedule_tick_plain_idx';
  SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}') INTO trigger_defs
  FROM pg_trigger t WHERE t.tgrelid = 'tasks'::regclass AND NOT t.tgisinternal;
  SELECT coalesce(array_agg(format('ALTER TABLE tasks ADD CONSTRAINT %I %s', conname, pg_get_constraintdef(oid)) ORDER BY conname), '{}')
  INTO check_defs
  FROM pg_constraint WHERE conrelid = 'tasks'::regclass AND contype = 'c' AND conname <> 'tasks_legacy_range';
  SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') INTO storage
  FROM pg_class WHERE oid = 'tasks'::regclass;

  -- The table as it is: renamed, its indexes too (index names are the schema's), its primary key
  -- and unique indexes dropped but the new key's, its triggers dropped (the parent's are cloned
  -- onto it).
  ALTER TABLE tasks RENAME TO tasks_legacy;
  ALTER TABLE tasks_legacy DROP CONSTRAINT tasks_pkey;
  DROP INDEX tasks_owner_idempotency_idx, tasks_owner_singleton_idx, tasks_schedule_tick_idx;
  FOR r IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = 'tasks_legacy'::regclass LOOP
    EXECUTE format('ALTER INDEX %I RENAME TO %I', r.relname, 'tasks_legacy' || substr(r.relname, 6));
  END LOOP;
  -- The new key's index as this partition's primary key: the parent's primary key adopts only a
  -- primary key's index (PostgreSQL 18; 15 would take a unique constraint's too), and builds one
  -- anew, under the lock, otherwise.
  ALTER TABLE tasks_legacy ADD CONSTRAINT tasks_legacy_pkey PRIMARY KEY USING INDEX tasks_legacy_id_created_idx;
  FOR r IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'tasks_legacy'::regclass AND NOT tgisinternal LOOP
    EXECUTE format('DROP TRIGGER %I ON tasks_legacy', r.tgname);
  END LOOP;

  -- The partitioned table.
  CREATE TABLE tasks (LIKE tasks_legacy INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (created_at);
  ALTER TABLE tasks ADD CONSTRAINT tasks_pkey PRIMARY KEY (id, created_at);
  FOREACH def IN ARRAY check_defs LOOP EXECUTE def; END LOOP;
  FOREACH def IN ARRAY index_defs LOOP EXECUTE def; END LOOP;
  CREATE INDEX tasks_schedule_tick_idx ON tasks USING btree (schedule_id, scheduled_for) WHERE schedule_id IS NOT NULL;
  FOREACH def IN ARRAY trigger_defs LOOP EXECUTE def; END LOOP;

  EXECUTE format('ALTER TABLE tasks ATTACH PARTITION tasks_legacy FOR VALUES FROM (MINVALUE) TO (%L)', cutover);
  ALTER TABLE tasks_legacy DROP CONSTRAINT tasks_legacy_range;

  -- The weeks from the cutover (a Monday) to four weeks after the current one, as TaskPartitions
  -- makes them: named by their Monday, their range also a check, the legacy table's storage
  -- parameters.
  week := cutover;
  WHILE week < ahead LOOP
    week_name := 'tasks_w' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('CREATE TABLE %I (LIKE tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)%s',
      week_name, storage);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (created_at >= %L AND created_at < %L)',
      week_name, week_name || '_range', week, week + interval '1 week');
    EXECUTE format('ALTER TABLE tasks ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
      week_name, week, week + interval '1 week');
    week := week + interval '1 week';
  END LOOP;
END
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION tasker_task_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
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
  -- The parent's partition, from its id (a minute either side, as createdAtWindow allows); its
  -- children are created after it (an hour and a minute back: the clock skew an insert allows).
  -- Unbounded for an id that is no UUIDv7.
  parent_time timestamptz := tasker_uuid_time(NEW."parent_id");
  parent_from timestamptz := coalesce(parent_time - interval '1 minute', '-infinity');
  parent_to timestamptz := coalesce(parent_time + interval '1 minute', 'infinity');
  siblings_from timestamptz := coalesce(parent_time - interval '61 minutes', '-infinity');
  children_from timestamptz := NEW."created_at" - interval '61 minutes';
BEGIN
  -- A finished task holds no slot: its handout goes in the commit that ends it.
  DELETE FROM "task_handouts" WHERE "task_id" = NEW."id";
  IF NEW."parent_id" IS NOT NULL THEN
    UPDATE "tasks" p SET "status" = 'PENDING', "version" = p."version" + 1, "updated_at" = now(),
      "waiting_for" = NULL
    WHERE p."id" = NEW."parent_id" AND p."created_at" BETWEEN parent_from AND parent_to
      AND p."status"::text = 'WAITING'
      AND (p."waiting_for" ->> 'kind') = 'children'
      AND NOT EXISTS (SELECT 1 FROM "tasks" c WHERE c."parent_id" = NEW."parent_id"
        AND c."created_at" >= siblings_from AND c."finished_at" IS NULL);
  END IF;
  IF parent_end IS NOT NULL THEN
    UPDATE "tasks" c SET "status" = 'CANCELLED', "version" = c."version" + 1, "updated_at" = now(),
      "error" = jsonb_build_object('message', 'the task was cancelled: its parent task ' || parent_end,
        'name', 'CancelledError', 'code', 'CANCELLED', 'at', to_jsonb(now())),
      "cancel_requested_at" = now(), "finished_at" = now(), "waiting_for" = NULL
    WHERE c."parent_id" = NEW."id" AND c."created_at" >= children_from AND c."status"::text IN ('PENDING', 'WAITING');
    UPDATE "tasks" c SET "cancel_requested_at" = now(), "version" = c."version" + 1, "updated_at" = now()
    WHERE c."parent_id" = NEW."id" AND c."created_at" >= children_from AND c."status"::text = 'RUNNING'
      AND c."cancel_requested_at" IS NULL;
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
