-- The dispatcher's wake-up: one empty NOTIFY per statement that inserts or updates tasks (a batch of
-- inserts, claims or completions is one statement), on a channel of its own. The dispatcher no
-- longer listens to tasker_task_events, whose payload is every changed row.
CREATE FUNCTION "tasker_wake_dispatcher"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tasker_dispatch', '');
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "tasks_wake_dispatcher" AFTER INSERT OR UPDATE ON "tasks"
  FOR EACH STATEMENT EXECUTE FUNCTION "tasker_wake_dispatcher"();
