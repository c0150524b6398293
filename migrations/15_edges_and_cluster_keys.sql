-- Nothing lost at the edges (the ledger) and one rule for matching cluster
-- aliases (the read path).

-- Blank lines a change file held, before its header or between records:
-- skipped and counted, so every record of a file is accounted for.
ALTER TABLE tickets.ingest_files ADD COLUMN blank_lines integer NOT NULL DEFAULT 0;

-- A cluster as the map and the snapshots name it when no alias applies: the
-- feed's text, trimmed of spaces, tabs, line breaks and no-break spaces, so
-- ' Karen' and 'Karen' are one cluster.
CREATE FUNCTION tickets.cluster_label(p_cluster text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(btrim(p_cluster, E' \t\n\r\f\v\u00a0'), '')
$$;

-- How a ticket's cluster is matched against cluster_aliases, everywhere: a
-- ' QOA ' from the feed is QOA. Before this, canonical_cluster() trimmed but
-- the views and capture_history() joined on lower() alone, so such a ticket
-- got the right map point but the wrong cluster name, filter and snapshot row.
CREATE FUNCTION tickets.cluster_key(p_cluster text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT lower(tickets.cluster_label(p_cluster))
$$;

CREATE OR REPLACE FUNCTION tickets.canonical_cluster(p_cluster text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(
        (SELECT a.cluster FROM tickets.cluster_aliases AS a
         WHERE tickets.cluster_key(a.alias) = tickets.cluster_key(p_cluster)),
        tickets.cluster_label(p_cluster))
$$;

CREATE OR REPLACE VIEW tickets.inc_open_sla AS
SELECT i.ticket_id, i.normalized_status, i.raw_status, i.is_actionable,
       i.cluster, COALESCE(a.cluster, tickets.cluster_label(i.cluster)) AS cluster_name, i.region, i.location_name,
       i.assigned_team, i.owner, i.geom, i.geo_source,
       sla.start AS sla_start,
       sla.start_source AS sla_start_source,
       floor(extract(epoch FROM tickets.clock() - sla.start) / 60)::integer AS age_minutes,
       s.target AS sla_target,
       tickets.clock() - sla.start > s.target AS sla_breached
FROM tickets.inc AS i
CROSS JOIN LATERAL (
    SELECT COALESCE(i.created_at_service, i.first_seen_at) AS start,
           CASE WHEN i.created_at_service IS NOT NULL THEN 'created_at_service'
                WHEN i.first_seen_at IS NOT NULL THEN 'first_seen_at' END AS start_source
) AS sla
LEFT JOIN tickets.sla_settings AS s ON s.dataset = 'inc'
LEFT JOIN tickets.cluster_aliases AS a ON tickets.cluster_key(a.alias) = tickets.cluster_key(i.cluster)
WHERE i.bucket = 'open';

CREATE OR REPLACE VIEW tickets.inc_closed AS
SELECT i.ticket_id, i.normalized_status, i.cluster, COALESCE(a.cluster, tickets.cluster_label(i.cluster)) AS cluster_name,
       i.region, i.location_name, i.assigned_team, i.owner, i.closed_at, i.mttr, i.sla_status, i.geom, i.geo_source
FROM tickets.inc AS i
LEFT JOIN tickets.cluster_aliases AS a ON tickets.cluster_key(a.alias) = tickets.cluster_key(i.cluster)
WHERE i.closed_at IS NOT NULL;

-- p_want_cluster, a code or a canonical name in any case and spacing, selects
-- every ticket of that canonical cluster, whichever way the feed wrote it.
CREATE OR REPLACE FUNCTION tickets.dashboard_match(p_cluster_code text, p_cluster_name text, p_status text,
                                                   p_want_cluster text, p_want_status text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_want_cluster IS NULL
            OR tickets.cluster_key(p_cluster_code) = tickets.cluster_key(p_want_cluster)
            OR tickets.cluster_key(p_cluster_name) = tickets.cluster_key(tickets.canonical_cluster(p_want_cluster)))
       AND (p_want_status IS NULL OR p_status = p_want_status)
$$;

CREATE OR REPLACE FUNCTION tickets.capture_history() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    observed timestamptz := tickets.clock();
    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;
    day_start timestamptz := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date::timestamp
                             AT TIME ZONE 'Africa/Nairobi';
    since timestamptz := (SELECT last_captured_at FROM tickets.history_capture_meta);
    events_added integer;
    snapshot_rows integer;
BEGIN
    -- The INC ingest's lock first (re-entrant when the ingest itself calls
    -- this): no INC file commits while we look, so "written since the last
    -- capture" misses nothing. Then our own, so two captures cannot both see
    -- a ticket as newly closed.
    PERFORM pg_advisory_xact_lock(1179407444, 1);
    PERFORM pg_advisory_xact_lock(1179407444, 10);

    CREATE TEMP TABLE IF NOT EXISTS capture_changed (ticket_id text PRIMARY KEY, is_closed boolean NOT NULL)
        ON COMMIT DROP;
    TRUNCATE capture_changed;
    INSERT INTO capture_changed
    SELECT i.ticket_id, i.bucket = 'closed' AND i.closed_at IS NOT NULL
    FROM tickets.inc AS i
    LEFT JOIN tickets.closure_watch AS w ON w.ticket_id = i.ticket_id
    WHERE (since IS NULL OR i.ingested_at >= since)
      AND w.seen_closed IS DISTINCT FROM (i.bucket = 'closed' AND i.closed_at IS NOT NULL);

    INSERT INTO tickets.closure_events (ticket_id, closed_at, mttr, cluster, assigned_team, owner, sla_status,
                                        normalized_status, observed_at)
    SELECT i.ticket_id, i.closed_at, i.mttr, i.cluster, i.assigned_team, i.owner, i.sla_status,
           i.normalized_status, observed
    FROM capture_changed AS c JOIN tickets.inc AS i USING (ticket_id)
    WHERE c.is_closed;
    GET DIAGNOSTICS events_added = ROW_COUNT;

    INSERT INTO tickets.closure_watch AS w (ticket_id, seen_closed, observed_at)
    SELECT ticket_id, is_closed, observed FROM capture_changed
    ON CONFLICT (ticket_id) DO UPDATE SET seen_closed = excluded.seen_closed, observed_at = excluded.observed_at;

    INSERT INTO tickets.history_capture_meta (last_captured_at) VALUES (now())
    ON CONFLICT (only_row) DO UPDATE SET last_captured_at = excluded.last_captured_at;

    DELETE FROM tickets.inc_daily_snapshot WHERE snapshot_date = today;
    INSERT INTO tickets.inc_daily_snapshot (snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                            closed, captured_at)
    SELECT today, COALESCE(t.cluster, '(all)'), COALESCE(sum(t.open_backlog), 0), COALESCE(sum(t.actionable), 0),
           COALESCE(sum(t.breached), 0), COALESCE(sum(t.opened), 0), COALESCE(sum(t.closed), 0), observed
    FROM (
        SELECT COALESCE(o.cluster_name, '(none)') AS cluster, 1 AS open_backlog,
               (o.is_actionable IS TRUE)::integer AS actionable, (o.sla_breached IS TRUE)::integer AS breached,
               0 AS opened, 0 AS closed
        FROM tickets.inc_open_sla AS o
        UNION ALL
        SELECT COALESCE(a.cluster, tickets.cluster_label(i.cluster), '(none)'), 0, 0, 0,
               (COALESCE(i.created_at_service, i.first_seen_at) >= day_start
                AND COALESCE(i.created_at_service, i.first_seen_at) < day_start + interval '1 day')::integer,
               (i.closed_at >= day_start AND i.closed_at < day_start + interval '1 day')::integer
        FROM tickets.inc AS i
        LEFT JOIN tickets.cluster_aliases AS a ON tickets.cluster_key(a.alias) = tickets.cluster_key(i.cluster)
        WHERE (COALESCE(i.created_at_service, i.first_seen_at) >= day_start
               AND COALESCE(i.created_at_service, i.first_seen_at) < day_start + interval '1 day')
           OR (i.closed_at >= day_start AND i.closed_at < day_start + interval '1 day')
        UNION ALL
        -- A cluster seen on an earlier day keeps a row (of zeros if need be),
        -- so its series has no gaps.
        SELECT s.cluster, 0, 0, 0, 0, 0
        FROM tickets.inc_daily_snapshot AS s
        WHERE s.snapshot_date = (SELECT max(snapshot_date) FROM tickets.inc_daily_snapshot WHERE snapshot_date < today)
          AND s.cluster <> '(all)'
    ) AS t
    GROUP BY GROUPING SETS ((t.cluster), ());
    GET DIAGNOSTICS snapshot_rows = ROW_COUNT;

    RETURN jsonb_build_object('events_added', events_added, 'snapshot_rows', snapshot_rows,
                              'snapshot_date', today);
END
$$;
