-- Step events (issue 21): every write of a durable step (ctx.step's end, a sleep's or a token's wait:
-- task_steps, 0024) is announced on tasker_task_events, in the transaction that writes it, so that
-- a task's live streams (GET /tasks/{id}/events, tRPC onTaskActivity) carry its steps as they end,
-- in commit order with its state changes. The payload is the step's row as JSON plus `kind: "step"`
-- and its task's tenant (`owner_id`, which the streams are scoped by); a row too large for a
-- notification (an output over about 7.8 KB) comes by its key alone (`truncated`), and the listener
-- reads it back. Plain tasks write no steps: this costs them nothing.
CREATE FUNCTION "tasker_announce_step"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  owner text;
  payload text;
BEGIN
  SELECT owner_id INTO owner FROM "tasks" WHERE id = NEW.task_id;
  payload := (to_jsonb(NEW) || jsonb_build_object('kind', 'step', 'owner_id', owner))::text;
  IF octet_length(payload) > 7900 THEN
    payload := json_build_object('kind', 'step', 'task_id', NEW.task_id, 'owner_id', owner,
                                 'step_id', NEW.step_id, 'truncated', true)::text;
  END IF;
  PERFORM pg_notify('tasker_task_events', payload);
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "task_steps_announce" AFTER INSERT OR UPDATE ON "task_steps"
  FOR EACH ROW EXECUTE FUNCTION "tasker_announce_step"();
