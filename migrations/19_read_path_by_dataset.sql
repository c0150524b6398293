-- CRQ gets the read path INC has, by dataset rather than by copy: one open-SLA
-- rule with its columns kept as data, one view of either dataset's tickets,
-- one dashboard, one history capture and one backlog series, each with a
-- thin INC and CRQ face. Closures are credited to the team and owner seen at
-- the closure, and the dispatch function finds the open, actionable tickets
-- nearest a point.

-- SLA rules per dataset. start_columns is the ordered list of timestamp
-- columns the SLA clock starts from: the first one a ticket has wins.
ALTER TABLE tickets.sla_settings ADD COLUMN start_columns text[];
UPDATE tickets.sla_settings
SET start_columns = CASE dataset WHEN 'crq' THEN '{scheduled_at,created_at_service,first_seen_at}'::text[]
                                 ELSE '{created_at_service,first_seen_at}'::text[] END;
ALTER TABLE tickets.sla_settings
    ALTER COLUMN start_columns SET NOT NULL,
    ADD CONSTRAINT sla_settings_start_columns_known CHECK (
        array_ndims(start_columns) = 1 AND cardinality(start_columns) BETWEEN 1 AND 4
        AND start_columns <@ '{created_at_service,scheduled_at,first_seen_at,source_created_at}'::text[]);
-- CRQ's rule is a default for operations to confirm (docs/phase-2-dashboard.md):
-- an installation's clock starts when it was scheduled, else when it was raised.
INSERT INTO tickets.sla_settings (dataset, target, start_columns)
VALUES ('crq', interval '72 hours', '{scheduled_at,created_at_service,first_seen_at}')
ON CONFLICT (dataset) DO NOTHING;
COMMENT ON TABLE tickets.sla_settings IS
    'SLA target and ordered start columns per dataset; change them with an UPDATE, no migration needed.';

-- The rule, as plain expressions the planner inlines (no per-row subquery).
CREATE FUNCTION tickets.sla_pick(p_column text, p_created_at_service timestamptz, p_scheduled_at timestamptz,
                                 p_first_seen_at timestamptz, p_source_created_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_column WHEN 'created_at_service' THEN p_created_at_service WHEN 'scheduled_at' THEN p_scheduled_at
                         WHEN 'first_seen_at' THEN p_first_seen_at WHEN 'source_created_at' THEN p_source_created_at END
$$;

CREATE FUNCTION tickets.sla_start_source(p_columns text[], p_created_at_service timestamptz,
                                         p_scheduled_at timestamptz, p_first_seen_at timestamptz,
                                         p_source_created_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN tickets.sla_pick(p_columns[1], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[1]
        WHEN tickets.sla_pick(p_columns[2], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[2]
        WHEN tickets.sla_pick(p_columns[3], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[3]
        WHEN tickets.sla_pick(p_columns[4], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[4]
    END
$$;

CREATE FUNCTION tickets.sla_start(p_columns text[], p_created_at_service timestamptz, p_scheduled_at timestamptz,
                                  p_first_seen_at timestamptz, p_source_created_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(
        tickets.sla_pick(p_columns[1], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[2], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[3], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[4], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at))
$$;

-- Either dataset's tickets in one shape. A query that names one dataset
-- reads only that table: the other branch is pruned at planning.
CREATE VIEW tickets.all_tickets AS
SELECT 'inc'::text AS dataset, ticket_id, normalized_status, raw_status, bucket, is_actionable, cluster, region,
       location_name, assigned_team, owner, sla_status, mttr, closed_at, created_at_service, scheduled_at,
       first_seen_at, source_created_at, source_updated_at, ingested_at, geom, geog, geo_source
FROM tickets.inc
UNION ALL
SELECT 'crq'::text, ticket_id, normalized_status, raw_status, bucket, is_actionable, cluster, region,
       location_name, assigned_team, owner, sla_status, mttr, closed_at, created_at_service, scheduled_at,
       first_seen_at, source_created_at, source_updated_at, ingested_at, geom, geog, geo_source
FROM tickets.crq;

-- Every ticket with its SLA start by its dataset's rule, open or not.
CREATE VIEW tickets.ticket_sla AS
SELECT t.*, COALESCE(a.cluster, tickets.cluster_label(t.cluster)) AS cluster_name,
       tickets.sla_start(s.start_columns, t.created_at_service, t.scheduled_at, t.first_seen_at,
                         t.source_created_at) AS sla_start,
       tickets.sla_start_source(s.start_columns, t.created_at_service, t.scheduled_at, t.first_seen_at,
                                t.source_created_at) AS sla_start_source,
       s.target AS sla_target
FROM tickets.all_tickets AS t
LEFT JOIN tickets.sla_settings AS s ON s.dataset = t.dataset
LEFT JOIN tickets.cluster_aliases AS a ON tickets.cluster_key(a.alias) = tickets.cluster_key(t.cluster);

CREATE VIEW tickets.open_sla AS
SELECT t.dataset, t.ticket_id, t.normalized_status, t.raw_status, t.is_actionable, t.cluster, t.cluster_name,
       t.region, t.location_name, t.assigned_team, t.owner, t.geom, t.geo_source, t.sla_start, t.sla_start_source,
       floor(extract(epoch FROM tickets.clock() - t.sla_start) / 60)::integer AS age_minutes,
       t.sla_target,
       tickets.clock() - t.sla_start > t.sla_target AS sla_breached,
       t.geog
FROM tickets.ticket_sla AS t
WHERE t.bucket = 'open';
COMMENT ON VIEW tickets.open_sla IS
    'Open tickets of either dataset with the SLA by their dataset''s rule (tickets.sla_settings); age_minutes and '
    'sla_breached are NULL (unknown) when none of the rule''s start columns is known.';

CREATE OR REPLACE VIEW tickets.inc_open_sla AS
SELECT ticket_id, normalized_status, raw_status, is_actionable, cluster, cluster_name, region, location_name,
       assigned_team, owner, geom, geo_source, sla_start, sla_start_source, age_minutes, sla_target, sla_breached
FROM tickets.open_sla WHERE dataset = 'inc';

CREATE VIEW tickets.crq_open_sla AS
SELECT ticket_id, normalized_status, raw_status, is_actionable, cluster, cluster_name, region, location_name,
       assigned_team, owner, geom, geo_source, sla_start, sla_start_source, age_minutes, sla_target, sla_breached
FROM tickets.open_sla WHERE dataset = 'crq';
COMMENT ON VIEW tickets.crq_open_sla IS
    'Open CRQ tickets; the same columns and meanings as inc_open_sla, by CRQ''s SLA rule.';

CREATE VIEW tickets.closed_tickets AS
SELECT dataset, ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner,
       closed_at, mttr, sla_status, geom, geo_source
FROM tickets.ticket_sla
WHERE closed_at IS NOT NULL;

CREATE OR REPLACE VIEW tickets.inc_closed AS
SELECT ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner, closed_at,
       mttr, sla_status, geom, geo_source
FROM tickets.closed_tickets WHERE dataset = 'inc';

CREATE VIEW tickets.crq_closed AS
SELECT ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner, closed_at,
       mttr, sla_status, geom, geo_source
FROM tickets.closed_tickets WHERE dataset = 'crq';

CREATE FUNCTION tickets.known_dataset(p_dataset text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_dataset IS DISTINCT FROM 'inc' AND p_dataset IS DISTINCT FROM 'crq' THEN
        RAISE EXCEPTION 'dataset must be inc or crq (got %)', COALESCE(quote_literal(p_dataset), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_dataset;
END
$$;

-- History per dataset. Existing closure events are INC's.
ALTER TABLE tickets.closure_events ADD COLUMN dataset text NOT NULL DEFAULT 'inc'
    CONSTRAINT closure_events_dataset_known CHECK (dataset IN ('inc', 'crq'));
ALTER TABLE tickets.closure_events ALTER COLUMN dataset DROP DEFAULT;
-- The dashboard finds the latest event of each closed ticket by this.
CREATE INDEX closure_events_latest_idx ON tickets.closure_events (dataset, ticket_id, event_id)
    INCLUDE (owner, assigned_team);

CREATE TABLE tickets.history_captures (
    dataset          text PRIMARY KEY CHECK (dataset IN ('inc', 'crq')),
    last_captured_at timestamptz NOT NULL
);
COMMENT ON TABLE tickets.history_captures IS
    'When each dataset''s last history capture ran (its transaction''s start, like ingested_at).';
INSERT INTO tickets.history_captures (dataset, last_captured_at)
SELECT 'inc', last_captured_at FROM tickets.history_capture_meta;
DROP TABLE tickets.history_capture_meta;

CREATE TABLE tickets.daily_snapshot (
    dataset       text NOT NULL CHECK (dataset IN ('inc', 'crq')),
    snapshot_date date NOT NULL,
    cluster       text NOT NULL,
    open_backlog  integer NOT NULL,
    actionable    integer NOT NULL,
    breached      integer NOT NULL,
    opened        integer NOT NULL,
    closed        integer NOT NULL,
    captured_at   timestamptz NOT NULL,
    PRIMARY KEY (dataset, snapshot_date, cluster)
);
COMMENT ON TABLE tickets.daily_snapshot IS
    'Per dataset, EAT day and canonical cluster, plus cluster ''(all)'' for the total; today''s rows follow each '
    'capture, past days are frozen.';
INSERT INTO tickets.daily_snapshot (dataset, snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                    closed, captured_at)
SELECT 'inc', snapshot_date, cluster, open_backlog, actionable, breached, opened, closed, captured_at
FROM tickets.inc_daily_snapshot;
DROP TABLE tickets.inc_daily_snapshot;
CREATE VIEW tickets.inc_daily_snapshot AS
SELECT snapshot_date, cluster, open_backlog, actionable, breached, opened, closed, captured_at
FROM tickets.daily_snapshot WHERE dataset = 'inc';
CREATE VIEW tickets.crq_daily_snapshot AS
SELECT snapshot_date, cluster, open_backlog, actionable, breached, opened, closed, captured_at
FROM tickets.daily_snapshot WHERE dataset = 'crq';

DROP FUNCTION tickets.capture_history();
CREATE FUNCTION tickets.capture_history(p_dataset text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    wanted text := tickets.known_dataset(p_dataset);
    observed timestamptz := tickets.clock();
    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;
    day_start timestamptz := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date::timestamp
                             AT TIME ZONE 'Africa/Nairobi';
    since timestamptz;
    events_added integer;
    snapshot_rows integer;
BEGIN
    -- The dataset's ingest lock first (re-entrant when its ingest calls this;
    -- datasets 1 and 2 of namespace "FLTT", see locks.py): no file of the
    -- dataset commits while we look, so "written since the last capture"
    -- misses nothing. Then the history lock, so two captures cannot both see
    -- a ticket as newly closed.
    PERFORM pg_advisory_xact_lock(1179407444, CASE wanted WHEN 'inc' THEN 1 ELSE 2 END);
    PERFORM pg_advisory_xact_lock(1179407444, 10);
    since := (SELECT h.last_captured_at FROM tickets.history_captures AS h WHERE h.dataset = wanted);

    CREATE TEMP TABLE IF NOT EXISTS capture_changed (ticket_id text PRIMARY KEY, is_closed boolean NOT NULL)
        ON COMMIT DROP;
    TRUNCATE capture_changed;
    INSERT INTO capture_changed
    SELECT t.ticket_id, t.bucket = 'closed' AND t.closed_at IS NOT NULL
    FROM tickets.all_tickets AS t
    LEFT JOIN tickets.closure_watch AS w ON w.ticket_id = t.ticket_id
    WHERE t.dataset = wanted
      AND (since IS NULL OR t.ingested_at >= since)
      AND w.seen_closed IS DISTINCT FROM (t.bucket = 'closed' AND t.closed_at IS NOT NULL);

    INSERT INTO tickets.closure_events (dataset, ticket_id, closed_at, mttr, cluster, assigned_team, owner,
                                        sla_status, normalized_status, observed_at)
    SELECT wanted, t.ticket_id, t.closed_at, t.mttr, t.cluster, t.assigned_team, t.owner, t.sla_status,
           t.normalized_status, observed
    FROM capture_changed AS c JOIN tickets.all_tickets AS t USING (ticket_id)
    WHERE t.dataset = wanted AND c.is_closed;
    GET DIAGNOSTICS events_added = ROW_COUNT;

    INSERT INTO tickets.closure_watch AS w (ticket_id, seen_closed, observed_at)
    SELECT ticket_id, is_closed, observed FROM capture_changed
    ON CONFLICT (ticket_id) DO UPDATE SET seen_closed = excluded.seen_closed, observed_at = excluded.observed_at;

    INSERT INTO tickets.history_captures AS h (dataset, last_captured_at) VALUES (wanted, now())
    ON CONFLICT ON CONSTRAINT history_captures_pkey DO UPDATE SET last_captured_at = excluded.last_captured_at;

    DELETE FROM tickets.daily_snapshot AS s WHERE s.dataset = wanted AND s.snapshot_date = today;
    INSERT INTO tickets.daily_snapshot (dataset, snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                        closed, captured_at)
    SELECT wanted, today, COALESCE(x.cluster, '(all)'), COALESCE(sum(x.open_backlog), 0),
           COALESCE(sum(x.actionable), 0), COALESCE(sum(x.breached), 0), COALESCE(sum(x.opened), 0),
           COALESCE(sum(x.closed), 0), observed
    FROM (
        SELECT COALESCE(o.cluster_name, '(none)') AS cluster, 1 AS open_backlog,
               (o.is_actionable IS TRUE)::integer AS actionable, (o.sla_breached IS TRUE)::integer AS breached,
               0 AS opened, 0 AS closed
        FROM tickets.open_sla AS o
        WHERE o.dataset = wanted
        UNION ALL
        -- Opened today by the dataset's SLA start rule, closed today by
        -- closed_at. A start today needs some start column today or later:
        -- the latest_start index finds those few tickets without a scan.
        SELECT COALESCE(t.cluster_name, '(none)'), 0, 0, 0,
               (t.sla_start >= day_start AND t.sla_start < day_start + interval '1 day')::integer,
               (t.closed_at >= day_start AND t.closed_at < day_start + interval '1 day')::integer
        FROM tickets.ticket_sla AS t
        WHERE t.dataset = wanted
          AND ((GREATEST(t.created_at_service, t.scheduled_at, t.first_seen_at, t.source_created_at) >= day_start
                AND t.sla_start >= day_start AND t.sla_start < day_start + interval '1 day')
               OR (t.closed_at >= day_start AND t.closed_at < day_start + interval '1 day'))
        UNION ALL
        -- A cluster seen on an earlier day keeps a row (of zeros if need be),
        -- so its series has no gaps.
        SELECT s.cluster, 0, 0, 0, 0, 0
        FROM tickets.daily_snapshot AS s
        WHERE s.dataset = wanted
          AND s.snapshot_date = (SELECT max(p.snapshot_date) FROM tickets.daily_snapshot AS p
                                 WHERE p.dataset = wanted AND p.snapshot_date < today)
          AND s.cluster <> '(all)'
    ) AS x
    GROUP BY GROUPING SETS ((x.cluster), ());
    GET DIAGNOSTICS snapshot_rows = ROW_COUNT;

    RETURN jsonb_build_object('events_added', events_added, 'snapshot_rows', snapshot_rows,
                              'snapshot_date', today);
END
$$;
-- The SLA start is no longer one fixed expression, so these serve nothing;
-- the latest of every column a rule may name (sla_settings_start_columns_known)
-- bounds every rule's start from above instead.
DROP INDEX tickets.inc_sla_start_idx;
DROP INDEX tickets.crq_sla_start_idx;
CREATE INDEX inc_latest_start_idx ON tickets.inc
    (GREATEST(created_at_service, scheduled_at, first_seen_at, source_created_at));
CREATE INDEX crq_latest_start_idx ON tickets.crq
    (GREATEST(created_at_service, scheduled_at, first_seen_at, source_created_at));

-- fn_inc_dashboard's pieces before migration 18, which nothing has called
-- since; they would be a second, INC-only way to read the dashboard.
DROP FUNCTION tickets.inc_dashboard_parts(text, text, text, timestamptz, timestamptz);
DROP FUNCTION tickets.inc_dashboard_breakdown(text, text, text, tstzrange);
DROP FUNCTION tickets.inc_dashboard_open(text, text);
DROP FUNCTION tickets.inc_dashboard_closed(text, text, tstzrange);

-- The dashboard of either dataset: the query fn_inc_dashboard ran since
-- migration 18, as text, for the reporting function to run by EXECUTE so that
-- it is planned with the arguments' values (a cluster filter by the
-- cluster_key indexes, the dataset by pruning the other table). Its
-- parameters: $1 cluster, $2 status, $3 window name, $4 window range, $5 the
-- cluster's keys. %1$s and %2$s are the cluster conditions ('true' when there
-- is none), %3$L the dataset. Returning the text, not the payload, spares
-- copying a payload of megabytes through one more function call.
CREATE FUNCTION tickets.dashboard_query(p_dataset text, p_filtered boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RETURN format($q$
        WITH open_rows AS MATERIALIZED (
            SELECT o.* FROM tickets.open_sla AS o
            WHERE o.dataset = %3$L AND %1$s AND tickets.dashboard_match(o.cluster, o.cluster_name, o.normalized_status, $1, $2)
        ), closed_rows AS MATERIALIZED (
            SELECT c.* FROM tickets.closed_tickets AS c
            WHERE c.dataset = %3$L AND c.closed_at >= lower($4) AND c.closed_at <= upper($4)
              AND %2$s AND tickets.dashboard_match(c.cluster, c.cluster_name, c.normalized_status, $1, $2)
        ), by_name AS (
            SELECT by, jsonb_agg(jsonb_build_object(
                       'name', name, 'open', open, 'breached', breached, 'closed_in_window', closed_in_window,
                       'mttr_median_minutes', mttr_median_minutes) ORDER BY open DESC, name) AS body
            FROM (SELECT b.by, COALESCE(NULLIF(btrim(CASE b.by WHEN 'owner' THEN r.owner ELSE r.assigned_team END),
                                               ''), 'unassigned') AS name,
                         count(*) FILTER (WHERE r.is_open) AS open,
                         count(*) FILTER (WHERE r.is_open AND r.sla_breached) AS breached,
                         count(*) FILTER (WHERE NOT r.is_open) AS closed_in_window,
                         percentile_cont(0.5) WITHIN GROUP (ORDER BY r.mttr) FILTER (WHERE NOT r.is_open)
                             AS mttr_median_minutes
                  FROM (SELECT true AS is_open, owner, assigned_team, sla_breached, NULL::integer AS mttr
                        FROM open_rows
                        UNION ALL
                        -- A closure counts for the owner and team its closure event recorded (the
                        -- capture that first saw the ticket closed: its latest event, as a reopened
                        -- and reclosed ticket has one per episode), else for the ticket's current
                        -- ones. Not matched on closed_at: a resolved ticket's closed_at moves when it
                        -- is closed, within the same episode.
                        SELECT false, CASE WHEN e.found THEN e.owner ELSE c.owner END,
                               CASE WHEN e.found THEN e.assigned_team ELSE c.assigned_team END, NULL, c.mttr
                        FROM closed_rows AS c
                        LEFT JOIN LATERAL (SELECT true AS found, ev.owner, ev.assigned_team
                                           FROM tickets.closure_events AS ev
                                           WHERE ev.dataset = %3$L AND ev.ticket_id = c.ticket_id
                                           ORDER BY ev.event_id DESC
                                           LIMIT 1) AS e ON true) AS r
                  CROSS JOIN (VALUES ('owner'), ('team')) AS b (by)
                  GROUP BY 1, 2) AS counted
            GROUP BY by
        )
        SELECT json_build_object(
            'generated_at', tickets.clock(),
            'filters', json_build_object('cluster', $1, 'status', $2, 'window', $3, 'from', lower($4),
                                         'to', upper($4)),
            'open', (SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(
                         json_build_object(
                             'type', 'Feature',
                             'id', o.ticket_id,
                             'geometry', ST_AsGeoJSON(o.geom, 6)::json,
                             'properties', json_build_object(
                                 'ticket_id', o.ticket_id, 'normalized_status', o.normalized_status,
                                 'raw_status', o.raw_status, 'is_actionable', o.is_actionable,
                                 'cluster', o.cluster, 'cluster_name', o.cluster_name, 'region', o.region,
                                 'location_name', o.location_name, 'assigned_team', o.assigned_team,
                                 'owner', o.owner, 'sla_start', o.sla_start, 'sla_start_source', o.sla_start_source,
                                 'age_minutes', o.age_minutes, 'sla_breached', o.sla_breached,
                                 'geo_source', o.geo_source))
                         ORDER BY o.sla_start NULLS LAST, o.ticket_id), '[]'::json))
                     FROM open_rows AS o),
            'closed', (SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(
                           json_build_object(
                               'type', 'Feature',
                               'id', c.ticket_id,
                               'geometry', ST_AsGeoJSON(c.geom, 6)::json,
                               'properties', json_build_object(
                                   'ticket_id', c.ticket_id, 'normalized_status', c.normalized_status,
                                   'cluster', c.cluster, 'cluster_name', c.cluster_name, 'region', c.region,
                                   'location_name', c.location_name, 'assigned_team', c.assigned_team,
                                   'owner', c.owner, 'closed_at', c.closed_at, 'mttr_minutes', c.mttr,
                                   'sla_status', c.sla_status, 'geo_source', c.geo_source))
                           ORDER BY c.closed_at DESC, c.ticket_id), '[]'::json))
                       FROM closed_rows AS c),
            'metrics', (SELECT json_build_object(
                            'open', o.open, 'actionable', o.actionable, 'breached', o.breached,
                            'closed_in_window', c.closed_in_window,
                            'mttr_median_minutes', c.mttr_median_minutes, 'mttr_p90_minutes', c.mttr_p90_minutes,
                            'geocode_coverage', json_build_object('any_point', o.any_point,
                                                                  'precise_point', o.precise_point))
                        FROM (SELECT count(*) AS open,
                                     count(*) FILTER (WHERE is_actionable) AS actionable,
                                     count(*) FILTER (WHERE sla_breached) AS breached,
                                     round(count(geom)::numeric / NULLIF(count(*), 0), 4) AS any_point,
                                     round((count(*) FILTER (WHERE geo_source IN ('feed', 'location')))::numeric
                                           / NULLIF(count(*), 0), 4) AS precise_point
                              FROM open_rows) AS o,
                             (SELECT count(*) AS closed_in_window,
                                     percentile_cont(0.5) WITHIN GROUP (ORDER BY mttr) AS mttr_median_minutes,
                                     percentile_cont(0.9) WITHIN GROUP (ORDER BY mttr) AS mttr_p90_minutes
                              FROM closed_rows) AS c),
            'freshness', (SELECT json_build_object(
                              'watermark', m.metadata->>'source_max_key',
                              'last_success_at', (m.metadata->>'last_success_at')::timestamptz,
                              'content_newest_at', newest.at,
                              'content_lag_minutes', floor(extract(epoch FROM tickets.clock() - newest.at) / 60))
                          FROM (SELECT max(t.source_updated_at) AS at FROM tickets.all_tickets AS t
                                WHERE t.dataset = %3$L) AS newest
                          LEFT JOIN tickets.import_meta AS m ON m.dataset = %3$L),
            'by_owner', COALESCE((SELECT body FROM by_name WHERE by = 'owner'), '[]'::jsonb)::json,
            'by_team', COALESCE((SELECT body FROM by_name WHERE by = 'team'), '[]'::jsonb)::json)
        $q$,
        CASE WHEN p_filtered THEN 'tickets.cluster_key(o.cluster) = ANY($5)' ELSE 'true' END,
        CASE WHEN p_filtered THEN 'tickets.cluster_key(c.cluster) = ANY($5)' ELSE 'true' END,
        tickets.known_dataset(p_dataset));
END
$fn$;


-- Both dashboards run that one query. Without parallel workers: funnelling
-- 10,000 wide open rows through two workers' tuple queues cost more than the
-- scan it split (measured on the bad-week benchmark).
CREATE OR REPLACE FUNCTION reporting.fn_inc_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                                      p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                                      p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
    result json;
BEGIN
    EXECUTE tickets.dashboard_query('inc', p_cluster IS NOT NULL) INTO result
    USING p_cluster, p_status, p_window, tickets.dashboard_window(p_window, p_from, p_to),
          tickets.cluster_keys_of(p_cluster);
    RETURN result;
END
$$;

CREATE FUNCTION reporting.fn_crq_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                           p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                           p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
    result json;
BEGIN
    EXECUTE tickets.dashboard_query('crq', p_cluster IS NOT NULL) INTO result
    USING p_cluster, p_status, p_window, tickets.dashboard_window(p_window, p_from, p_to),
          tickets.cluster_keys_of(p_cluster);
    RETURN result;
END
$$;

-- The backlog-over-time series of either dataset, from its daily snapshots.
CREATE FUNCTION tickets.backlog(p_dataset text, p_from date, p_to date, p_cluster text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'cluster', COALESCE(tickets.canonical_cluster(p_cluster), '(all)'),
        'series', COALESCE(jsonb_agg(jsonb_build_object(
            'date', s.snapshot_date, 'open_backlog', s.open_backlog, 'actionable', s.actionable,
            'breached', s.breached, 'opened', s.opened, 'closed', s.closed) ORDER BY s.snapshot_date), '[]'::jsonb))
    FROM tickets.daily_snapshot AS s
    WHERE s.dataset = tickets.known_dataset(p_dataset)
      AND s.cluster = COALESCE(tickets.canonical_cluster(p_cluster), '(all)')
      AND s.snapshot_date BETWEEN p_from AND p_to
$$;

CREATE OR REPLACE FUNCTION reporting.fn_inc_backlog(p_from date, p_to date, p_cluster text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT tickets.backlog('inc', p_from, p_to, p_cluster)
$$;

CREATE FUNCTION reporting.fn_crq_backlog(p_from date, p_to date, p_cluster text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT tickets.backlog('crq', p_from, p_to, p_cluster)
$$;

-- Dispatch walks only the open, actionable tickets, so its index holds only
-- them: a small index to keep up, and a nearest-first walk that never steps
-- over a closed ticket.
CREATE INDEX inc_open_actionable_geog_idx ON tickets.inc USING gist (geog) WHERE bucket = 'open' AND is_actionable;
CREATE INDEX crq_open_actionable_geog_idx ON tickets.crq USING gist (geog) WHERE bucket = 'open' AND is_actionable;

-- Dispatch: the open, actionable tickets nearest a point, nearest first. The
-- geog GiST indexes walk the tickets in distance order (KNN), which PostGIS
-- measures on the sphere for geography; the radius and distance_m use the
-- sphere too, so order, cut-off and figure agree (the spheroid differs by at
-- most ~0.3%).
CREATE FUNCTION reporting.fn_nearest_open_tickets(p_lat double precision, p_lon double precision,
                                                  p_radius_km double precision DEFAULT 10,
                                                  p_limit integer DEFAULT 20, p_dataset text DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    result json;
BEGIN
    -- NaN passes no range test below (it sorts above every number).
    IF p_lat IS NULL OR NOT p_lat BETWEEN -90 AND 90 THEN
        RAISE EXCEPTION 'p_lat must be a latitude between -90 and 90 (got %)', COALESCE(p_lat::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_lon IS NULL OR NOT p_lon BETWEEN -180 AND 180 THEN
        RAISE EXCEPTION 'p_lon must be a longitude between -180 and 180 (got %)', COALESCE(p_lon::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_radius_km IS NULL OR NOT (p_radius_km > 0 AND p_radius_km <= 20000) THEN
        RAISE EXCEPTION 'p_radius_km must be above 0 and at most 20000 (got %)', COALESCE(p_radius_km::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR NOT p_limit BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'p_limit must be between 1 and 500 (got %)', COALESCE(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Any case and spacing, as p_cluster: 'INC' is inc.
    IF p_dataset IS NOT NULL AND lower(btrim(p_dataset)) NOT IN ('inc', 'crq') THEN
        RAISE EXCEPTION 'p_dataset must be inc, crq, or NULL for both (got %)', quote_literal(p_dataset)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE $q$
        WITH candidates AS (
            -- Straight from the tables (no join above them) and ordered by
            -- distance alone, so each one's geog index yields its tickets
            -- nearest first and a merge of the two stops at the limit.
            SELECT t.dataset, t.ticket_id
            FROM tickets.all_tickets AS t
            WHERE t.bucket = 'open' AND t.is_actionable AND ($4::text IS NULL OR t.dataset = $4)
              AND ST_DWithin(t.geog, $1, $2, false)
            ORDER BY t.geog <-> $1
            LIMIT $3
        ), nearest AS (
            SELECT o.*, ST_Distance(o.geog, $1, false) AS distance_m
            FROM candidates AS c JOIN tickets.open_sla AS o USING (dataset, ticket_id)
        )
        SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(json_build_object(
            'type', 'Feature',
            'id', n.ticket_id,
            'geometry', ST_AsGeoJSON(n.geom, 6)::json,
            'properties', json_build_object(
                'ticket_id', n.ticket_id, 'dataset', n.dataset, 'distance_m', round(n.distance_m::numeric, 1),
                'normalized_status', n.normalized_status, 'cluster', n.cluster, 'cluster_name', n.cluster_name,
                'location_name', n.location_name, 'assigned_team', n.assigned_team, 'owner', n.owner,
                'sla_start', n.sla_start, 'age_minutes', n.age_minutes, 'sla_breached', n.sla_breached,
                'geo_source', n.geo_source))
            ORDER BY n.distance_m, n.dataset, n.ticket_id), '[]'::json))
        FROM nearest AS n
    $q$
    INTO result
    USING ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326)::geography, p_radius_km * 1000, p_limit,
          lower(btrim(p_dataset));
    RETURN result;
END
$fn$;

REVOKE EXECUTE ON FUNCTION reporting.fn_crq_dashboard(text, text, text, timestamptz, timestamptz),
                           reporting.fn_crq_backlog(date, date, text),
                           reporting.fn_nearest_open_tickets(double precision, double precision, double precision,
                                                             integer, text)
    FROM PUBLIC;
