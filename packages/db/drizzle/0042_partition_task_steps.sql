-- Partitioning task_steps in place, 3 of 3: the switch, as 0039 did for tasks. One transaction,
-- catalog changes only: task_steps is renamed task_steps_legacy, a task_steps PARTITION BY RANGE
-- (task_created_at) takes its place (same columns, checks and trigger), task_steps_legacy is
-- attached as [MINVALUE, cutover) without a scan (0040's check, validated by 0041) and without an
-- index build (the primary key adopts 0041's index), and weeks are made from the cutover to four
-- weeks ahead, each with the bounds of the tasks' week of the same name, so that a week of tasks
-- and its steps go together.
--   The cutover: the start of a week of tasks, so that every week of steps has its week of tasks.
--   On an empty table (a new installation, every test database) the tasks' first week's, so that
--   steps mirror tasks from the first; otherwise the first at or after next Monday, after every
--   task whose steps were written before (with '-infinity').
--   tasker_step_time(created_at) is a step's partition key for its task: '-infinity' for a task
--   created before the cutover (the legacy partition: where its earlier steps are, so that its
--   steps keep one key each), its created_at otherwise. Every statement that writes a step
--   writes it through this function.
--   A release before this one writes steps with ON CONFLICT (task_id, step_id), which the
--   partitioned table cannot answer: a durable step recorded by a worker of that release after
--   the switch fails its attempt, which a worker of this release retries (upgrade notes in
--   docs/partitioning.md).
DO $do$
DECLARE
  cutover timestamptz;
  ahead timestamptz := (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '5 weeks') AT TIME ZONE 'UTC';
  week timestamptz;
  week_name text;
  storage text;
BEGIN
  IF (SELECT relkind FROM pg_class WHERE oid = 'task_steps'::regclass) = 'p' THEN
    RETURN;
  END IF;
  LOCK TABLE task_steps IN ACCESS EXCLUSIVE MODE;
  -- The start of the first week of tasks (at or after next Monday, if task_steps holds rows).
  SELECT min(week_from) INTO cutover
  FROM (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS week_from
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'tasks'::regclass) weeks
  WHERE NOT EXISTS (SELECT 1 FROM task_steps)
     OR week_from >= (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '1 week') AT TIME ZONE 'UTC';
  IF cutover IS NULL THEN
    RAISE EXCEPTION 'tasks has no week to start the weeks of task_steps at: is it partitioned (0039)?';
  END IF;
  SELECT coalesce(' WITH (' || array_to_string(reloptions, ', ') || ')', '') INTO storage
  FROM pg_class WHERE oid = 'task_steps'::regclass;

  EXECUTE format($f$
    CREATE FUNCTION tasker_step_time(task_created_at timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
      SELECT CASE WHEN task_created_at < %L::timestamptz THEN '-infinity'::timestamptz ELSE task_created_at END
    $body$$f$, cutover);
  EXECUTE format('COMMENT ON FUNCTION tasker_step_time(timestamptz) IS %L',
    'A step''s partition key (task_steps.task_created_at) for its task''s created_at: -infinity before the cutover ' || cutover);

  ALTER TABLE task_steps RENAME TO task_steps_legacy;
  ALTER TABLE task_steps_legacy DROP CONSTRAINT task_steps_pkey;
  ALTER TABLE task_steps_legacy ADD CONSTRAINT task_steps_legacy_pkey PRIMARY KEY USING INDEX task_steps_key_idx;
  DROP TRIGGER task_steps_announce ON task_steps_legacy;

  CREATE TABLE task_steps (LIKE task_steps_legacy INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (task_created_at);
  -- No default on the parent: every writer names the key (tasker_step_time).
  ALTER TABLE task_steps ALTER COLUMN task_created_at DROP DEFAULT;
  ALTER TABLE task_steps ADD CONSTRAINT task_steps_pkey PRIMARY KEY (task_id, step_id, task_created_at);
  ALTER TABLE task_steps ADD CONSTRAINT task_steps_status_check CHECK (status in ('completed', 'failed', 'waiting'));
  CREATE TRIGGER task_steps_announce AFTER INSERT OR UPDATE ON task_steps
    FOR EACH ROW EXECUTE FUNCTION tasker_announce_step();

  EXECUTE format('ALTER TABLE task_steps ATTACH PARTITION task_steps_legacy FOR VALUES FROM (MINVALUE) TO (%L)', cutover);
  ALTER TABLE task_steps_legacy DROP CONSTRAINT task_steps_legacy_range;

  week := cutover;
  WHILE week < ahead LOOP
    week_name := 'task_steps_w' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('CREATE TABLE %I (LIKE task_steps INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)%s',
      week_name, storage);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (task_created_at >= %L AND task_created_at < %L)',
      week_name, week_name || '_range', week, week + interval '1 week');
    EXECUTE format('ALTER TABLE task_steps ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
      week_name, week, week + interval '1 week');
    week := week + interval '1 week';
  END LOOP;
END
$do$;
