-- Every change to a task row is announced by PostgreSQL itself, inside the transaction that makes
-- it: NOTIFY is delivered when (and only when) that transaction commits, so no process can commit a
-- state and die before announcing it. The payload is the row as JSON without its input; a row too
-- large for NOTIFY (8000 bytes) is announced by id and version only, and listeners read it.
CREATE FUNCTION "tasker_announce_task"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  payload text := (to_jsonb(NEW) - 'input')::text;
BEGIN
  IF octet_length(payload) > 7900 THEN
    payload := json_build_object('id', NEW.id, 'version', NEW.version, 'owner_id', NEW.owner_id, 'name', NEW.name, 'status', NEW.status, 'truncated', true)::text;
  END IF;
  PERFORM pg_notify('tasker_task_events', payload);
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_announce" AFTER INSERT OR UPDATE ON "tasks"
  FOR EACH ROW EXECUTE FUNCTION "tasker_announce_task"();
