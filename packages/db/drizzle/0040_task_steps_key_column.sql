-- Partitioning task_steps (docs/partitioning.md, step 7), 1 of 3: a step goes in the week of its
-- task, so that retention drops a week's steps with the week of tasks instead of deleting them row
-- by row. Expand first, switch later, so that a release before this one, still running during a
-- rolling upgrade, keeps writing its steps (its upserts name the old key, (task_id, step_id), which
-- the partitioned table cannot have):
--   task_created_at        the partition key: tasker_step_time of the step's task's created_at.
--                          Added with a constant default (no rewrite): every row written so far,
--                          and every row the release before writes, holds '-infinity';
--   tasker_step_cutover()  from when a task's steps carry its created_at: the Monday after next
--                          (a rolling upgrade is over by then: the tasks created before it keep
--                          '-infinity', so that the rows the release before wrote for them and this
--                          release's are one key each); on a new installation (no task yet) the
--                          tasks' first week, so that steps mirror tasks from the first;
--   tasker_step_time(created_at)  '-infinity' before the cutover, created_at from it: every
--                          statement that writes a step writes its key through it.
-- The switch itself is 0042 on a new installation, and the worker's sweeper (or a process's start)
-- once the cutover has passed on an upgraded one (TaskPartitions.partitionStepsWhenDue).
ALTER TABLE "task_steps" ADD COLUMN "task_created_at" timestamp (3) with time zone DEFAULT '-infinity' NOT NULL;--> statement-breakpoint
DO $do$
DECLARE
  cutover timestamptz;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tasks) AND NOT EXISTS (SELECT 1 FROM task_steps) THEN
    SELECT min((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz)
    INTO cutover
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'tasks'::regclass;
  END IF;
  cutover := coalesce(cutover,
    (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '2 weeks') AT TIME ZONE 'UTC');
  EXECUTE format('CREATE FUNCTION tasker_step_cutover() RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
    format('SELECT %L::timestamptz', cutover));
END
$do$;--> statement-breakpoint
CREATE FUNCTION tasker_step_time(task_created_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN task_created_at < tasker_step_cutover() THEN '-infinity'::timestamptz ELSE task_created_at END
$$;
