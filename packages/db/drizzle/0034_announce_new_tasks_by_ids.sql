-- New tasks of a tenant that nobody watches tenant-wide are announced by their ids alone, many to
-- a notification: {"kind": "new", "owner_id", "name", "status", "version", "ids": [...]}, one per
-- run of rows that share those four (a batch's rows all do), as many ids as fit in about 7.7 KB
-- (some 190). 0030 announced each of them as its own JSON object ({id, version, owner_id, name,
-- status, truncated}), packed by a window over their running sizes: measured on 1,000-row inserts
-- (pgbench, PostgreSQL 15, the batch's statement shape), that cost the inserting backend 7 to 12 ms
-- per 1,000 rows of some 30, and this form costs no measurable time (within the runs' noise). A
-- listener reads the same thing from either form (@tasker/db's parseChanges: a key per id).
-- The rows of a watched tenant (tasker_tenant_watchers, a lease held by a server that streams the
-- tenant) still come whole, packed as 0030 does; the watched tenants are read once per statement.
CREATE OR REPLACE FUNCTION "tasker_announce_new_tasks"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  watched text[] := ARRAY(SELECT DISTINCT tenant_id FROM "tasker_tenant_watchers" WHERE expires_at > now());
BEGIN
  PERFORM pg_notify('tasker_task_events', json_build_object(
      'kind', 'new', 'owner_id', g.owner_id, 'name', g.name, 'status', g.status, 'version', g.version,
      'ids', array_agg(g.id))::text)
  FROM (SELECT t.owner_id, t.name, t.status, t.version, t.id,
               (row_number() OVER (PARTITION BY t.owner_id, t.name, t.status, t.version) - 1)
                 / greatest(1, (7700 - octet_length(to_json(t.owner_id)::text) - octet_length(to_json(t.name)::text)) / 39)
                 AS chunk
        FROM new_rows t
        WHERE t.owner_id <> ALL (watched)) g
  GROUP BY g.owner_id, g.name, g.status, g.version, g.chunk;
  IF cardinality(watched) = 0 THEN
    RETURN NULL;
  END IF;
  -- The watched tenants' rows, whole: 0030's packing (a row longer than 7,900 bytes by its key; an
  -- entry longer than 3,900 bytes alone; the others in chunks of their running size / 3,900).
  PERFORM pg_notify('tasker_task_events', '[' || string_agg(c.p, ',' ORDER BY c.n) || ']')
  FROM (
    SELECT s.n, s.p,
      CASE WHEN s.size > 3901 THEN -s.n
           ELSE sum(s.size) FILTER (WHERE s.size <= 3901) OVER (ORDER BY s.n) / 3900 END AS chunk
    FROM (SELECT k.n, k.p, octet_length(k.p) + 1 AS size
          FROM (SELECT r.n,
                       CASE WHEN octet_length(r.p) > 7900
                         THEN json_build_object('id', r.id, 'version', r.version, 'owner_id', r.owner_id,
                                                'name', r.name, 'status', r.status, 'truncated', true)::text
                         ELSE r.p END AS p
                FROM (SELECT row_number() OVER () AS n, t.id, t.version, t.owner_id, t.name, t.status,
                             (to_jsonb(t) - 'input')::text AS p
                      FROM new_rows t
                      WHERE t.owner_id = ANY (watched)) r) k) s
  ) c
  GROUP BY c.chunk;
  RETURN NULL;
END
$$;
