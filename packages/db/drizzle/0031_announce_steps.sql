-- Step events (issue 21): every write of a durable step (ctx.step's end, a sleep's or a token's wait:
-- task_steps, 0024) is announced on tasker_task_events, in the transaction that writes it, so that
-- a task's live streams (GET /tasks/{id}/events, tRPC onTaskActivity) carry its steps as they end,
-- in commit order with its state changes. By its key alone ({kind: "step", task_id, step_id}), as
-- 0030 announces new tasks: almost no step is watched, so its row is not built (nor its task's
-- tenant looked up) for nobody; a server that streams the task reads the step back. Plain tasks
-- write no steps: this costs them nothing.
CREATE FUNCTION "tasker_announce_step"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('tasker_task_events',
    json_build_object('kind', 'step', 'task_id', NEW.task_id, 'step_id', NEW.step_id)::text);
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "task_steps_announce" AFTER INSERT OR UPDATE ON "task_steps"
  FOR EACH ROW EXECUTE FUNCTION "tasker_announce_step"();
