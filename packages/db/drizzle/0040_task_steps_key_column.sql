-- Partitioning task_steps in place, 1 of 3 (docs/partitioning.md, step 7): a step goes in the week
-- of its task, so that retention drops a week's steps with the week instead of deleting them row by
-- row.
--   task_created_at        the partition key: the step's task's created_at, as tasker_step_time
--                          (0042) gives it. Added with a constant default (no rewrite): every row
--                          written before the switch, by this release or the one before, holds
--                          '-infinity' and belongs to the legacy partition;
--   task_steps_legacy_range  so that the switch attaches the table as its legacy partition without
--                          a scan, whatever the bound: every row so far is '-infinity' (NOT VALID
--                          here, no scan under this lock; validated by 0041).
ALTER TABLE "task_steps" ADD COLUMN "task_created_at" timestamp (3) with time zone DEFAULT '-infinity' NOT NULL;--> statement-breakpoint
ALTER TABLE "task_steps" ADD CONSTRAINT "task_steps_legacy_range" CHECK ("task_created_at" = '-infinity') NOT VALID;
