-- tasker:no-transaction
-- Partitioning task_steps, 2 of 3: the key the partitioned table will have, (task_id, step_id,
-- task_created_at), built concurrently while reads and writes go on. This release's upserts name
-- it from now on (ON CONFLICT infers this index before the switch, the primary key after it); the
-- switch makes it the legacy partition's primary key (no index built under its lock).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "task_steps_key_idx" ON "task_steps" USING btree ("task_id","step_id","task_created_at");
