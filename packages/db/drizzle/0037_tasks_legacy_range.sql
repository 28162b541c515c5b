-- Partitioning tasks in place, 1 of 3 (docs/partitioning.md, "Migrating an existing table"). The
-- table as it is becomes the first partition of a partitioned tasks, holding created_at from
-- MINVALUE to a cutover: the start of the week after next (Monday 00:00 UTC). This check says so,
-- NOT VALID (no scan: only new rows are checked here); 0038 validates it outside a transaction,
-- so that 0039's ATTACH needs no scan under its lock. Every row inserted until the switch is
-- before the cutover (the service refuses ids over a minute ahead of the database's clock). The
-- cutover is kept as the constraint's comment, which 0039 reads.
DO $$
DECLARE
  cutover timestamptz := (date_trunc('week', now() AT TIME ZONE 'UTC') + interval '2 weeks') AT TIME ZONE 'UTC';
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'tasks'::regclass AND conname = 'tasks_legacy_range') THEN
    EXECUTE format('ALTER TABLE tasks ADD CONSTRAINT tasks_legacy_range CHECK (created_at < %L::timestamptz) NOT VALID', cutover);
    EXECUTE format('COMMENT ON CONSTRAINT tasks_legacy_range ON tasks IS %L',
      to_char(cutover AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
  END IF;
END
$$;
