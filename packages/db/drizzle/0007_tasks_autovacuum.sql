-- The tasks table churns (an insert and two or more updates per task, none of them HOT since
-- status and updated_at are indexed): vacuum and analyze it after 2 % of its rows changed rather
-- than PostgreSQL's default 20 %, so that dead index entries (tasks_unfinished_idx above all) and
-- stale statistics never pile up between runs.
ALTER TABLE "tasks" SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.05);
