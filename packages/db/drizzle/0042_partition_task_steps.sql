-- Partitioning task_steps, 3 of 3: the switch, as 0039 did for tasks, as a function
-- (tasker_partition_task_steps(legacy_to)), run here on a new installation (no task, no step yet:
-- no release before this one can be writing steps) and, on an upgraded one, by
-- TaskPartitions.partitionStepsWhenDue once tasker_step_cutover() has passed (the release before is
-- gone by then; it validates a range check first, outside the switch's lock, so that the attach
-- need not scan). One transaction, catalog changes only: task_steps is renamed task_steps_legacy,
-- its primary key becomes 0041's index, a task_steps PARTITION BY RANGE (task_created_at) takes its
-- place (same columns, check and trigger; primary key (task_id, step_id, task_created_at); no
-- default on the key: every writer names it), and task_steps_legacy is attached as [MINVALUE,
-- legacy_to). The weeks from legacy_to on, with the bounds of the tasks' weeks of the same names,
-- are made by TaskPartitions.makeAhead, which every migration run and every sweep runs after it.
CREATE FUNCTION tasker_partition_task_steps(legacy_to timestamptz) RETURNS void
LANGUAGE plpgsql AS $do$
DECLARE
  r record;
BEGIN
  -- Locked first, then looked at: another process's switch may have just committed (the name
  -- then is its partitioned table's).
  LOCK TABLE task_steps IN ACCESS EXCLUSIVE MODE;
  IF (SELECT relkind FROM pg_class WHERE oid = 'task_steps'::regclass) = 'p' THEN
    RETURN;
  END IF;
  ALTER TABLE task_steps RENAME TO task_steps_legacy;
  ALTER TABLE task_steps_legacy DROP CONSTRAINT task_steps_pkey;
  ALTER TABLE task_steps_legacy ADD CONSTRAINT task_steps_legacy_pkey PRIMARY KEY USING INDEX task_steps_key_idx;
  DROP TRIGGER task_steps_announce ON task_steps_legacy;

  CREATE TABLE task_steps (LIKE task_steps_legacy INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (task_created_at);
  ALTER TABLE task_steps ALTER COLUMN task_created_at DROP DEFAULT;
  ALTER TABLE task_steps ADD CONSTRAINT task_steps_pkey PRIMARY KEY (task_id, step_id, task_created_at);
  ALTER TABLE task_steps ADD CONSTRAINT task_steps_status_check CHECK (status in ('completed', 'failed', 'waiting'));
  CREATE TRIGGER task_steps_announce AFTER INSERT OR UPDATE ON task_steps
    FOR EACH ROW EXECUTE FUNCTION tasker_announce_step();

  EXECUTE format('ALTER TABLE task_steps ATTACH PARTITION task_steps_legacy FOR VALUES FROM (MINVALUE) TO (%L)', legacy_to);
  -- The range checks that spared the attach its scan (partitionStepsWhenDue's, named by bound).
  FOR r IN SELECT conname FROM pg_constraint
           WHERE conrelid = 'task_steps_legacy'::regclass AND conname LIKE 'task\_steps\_legacy\_range%' LOOP
    EXECUTE format('ALTER TABLE task_steps_legacy DROP CONSTRAINT %I', r.conname);
  END LOOP;
END
$do$;--> statement-breakpoint
DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasks) AND NOT EXISTS (SELECT 1 FROM task_steps) THEN
    PERFORM tasker_partition_task_steps(tasker_step_cutover());
  END IF;
END
$do$;
