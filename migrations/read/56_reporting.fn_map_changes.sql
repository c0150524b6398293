-- The live map as a change feed (docs/dashboard-api-contract.md): with no token, the whole map; with the token
-- of a previous answer, what entered it or changed since and the ids that left it. A ticket changed since the
-- token is one whose row version (xmin) is not older than the oldest transaction still running when the token
-- was made: every write since, and a few before (sent again, unchanged; never one missed). xmin is 32 bits and
-- wraps: age() compares it with the token's, and a token over a billion transactions old is not answered from. What moves with the
-- clock alone is compared at the token's instant and now: a breach that flipped, a closure that entered or left
-- the window. What a row version cannot show (a deleted ticket, changed SLA rules or aliases, a deploy of the
-- read layer, a restarted or restored server) changes the token's basis, and the answer is the whole map again.
-- Planned with each call's values (plan_cache_mode): a plan kept for any token would read every ticket to send
-- the few changed ones, where the call's own plan fetches them by their keys.
CREATE OR REPLACE FUNCTION reporting.fn_map_changes(p_token text DEFAULT NULL, p_dataset text DEFAULT NULL,
                                                    p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                                    p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                                    p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'
SET max_parallel_workers_per_gather = 0 SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    now_at timestamptz := tickets.clock();
    oldest_running xid8 := pg_snapshot_xmin(pg_current_snapshot());
    newest_seen numeric := pg_snapshot_xmax(pg_current_snapshot())::text::numeric;
    window_now tstzrange;
    basis text;
    parts text[];
    since_xid numeric;
    written_since integer;
    window_then tstzrange;
    changed_inc text[];
    changed_crq text[];
    since_at timestamptz;
    full_because text;
    result json;
BEGIN
    PERFORM FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
    IF p_dataset IS DISTINCT FROM 'inc' AND p_dataset IS DISTINCT FROM 'crq' AND p_dataset IS NOT NULL THEN
        RAISE EXCEPTION 'p_dataset must be inc, crq, or NULL for both (got %)', tickets.quoted_argument(p_dataset)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    window_now := tickets.window_at(p_window, p_from, p_to, now_at);
    -- What a token shares with the call it came from, else it cannot be answered from.
    -- Instants as epochs: their text would follow the caller's DateStyle, and a token must not.
    basis := md5(concat_ws('|', 'map feed 1', extract(epoch FROM pg_postmaster_start_time()),
                           (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database()),  -- a restore
                           (SELECT generation FROM tickets.map_feed_generation),
                           (SELECT extract(epoch FROM max(applied_at)) FROM tickets.schema_read_layer),
                           (SELECT max(name) FROM tickets.schema_migrations),  -- any deploy that changed something
                           COALESCE(p_dataset, 'both'), p_cluster, p_status, p_window, extract(epoch FROM p_from),
                           extract(epoch FROM p_to)));
    IF p_token IS NULL THEN
        full_because := 'no token';
    ELSE
        parts := regexp_match(p_token, '^m1[.]([0-9a-f]{32})[.]([0-9]{1,20})[.]([0-9]{1,17})$');  -- 17 digits: before year 5000
        IF parts IS NULL THEN
            RAISE EXCEPTION 'p_token must be a token this function returned, or NULL for the whole map (got %)',
                tickets.quoted_argument(p_token) USING ERRCODE = 'invalid_parameter_value';
        END IF;
        since_xid := parts[2]::numeric;
        since_at := to_timestamp(0) + parts[3]::bigint * interval '1 microsecond';
        IF parts[1] <> basis THEN
            full_because := 'the token is from other filters, or the map was reset since (a deploy, a server '
                            'restart or restore, a deleted or renamed ticket, changed SLA rules or cluster aliases)';
        ELSIF since_at > now_at OR since_xid > newest_seen THEN
            full_because := 'the token is from later than this call (its clock, or its transactions)';
        ELSIF newest_seen - since_xid >= 1000000000 THEN
            full_because := 'the token is too old: over a billion transactions ago';
        END IF;
        written_since := age((since_xid % 4294967296)::text::xid);
        window_then := tickets.window_at(p_window, p_from, p_to, since_at);
    END IF;

    IF full_because IS NULL THEN
        -- One pass over each table, not through the views: a refresh must cost a fraction of the whole map.
        -- A row is sent when written since the token, or when the clock alone moved it: a breach that flipped,
        -- a closure that entered or left the window.
        SELECT array_agg(DISTINCT c.ticket_id) FILTER (WHERE c.dataset = 'inc'),
               array_agg(DISTINCT c.ticket_id) FILTER (WHERE c.dataset = 'crq')
        INTO changed_inc, changed_crq
        FROM (SELECT r.dataset, r.ticket_id
              FROM (SELECT 'inc'::text AS dataset, ticket_id, xmin AS row_version, bucket, created_at_service,
                           scheduled_at, first_seen_at, source_created_at
                    FROM tickets.inc
                    UNION ALL
                    SELECT 'crq'::text, ticket_id, xmin, bucket, created_at_service, scheduled_at, first_seen_at,
                           source_created_at
                    FROM tickets.crq) AS r
              LEFT JOIN tickets.sla_settings AS s ON s.dataset = r.dataset
              WHERE (p_dataset IS NULL OR r.dataset = p_dataset)
                AND (age(r.row_version)::bigint <@ int8range(0, written_since, '[]')  -- negative: wrapped, older still
                     OR (r.bucket = 'open'
                         AND (since_at - tickets.sla_start(s.start_columns, r.created_at_service, r.scheduled_at,
                                                           r.first_seen_at, r.source_created_at) > s.target)
                             IS DISTINCT FROM (now_at - tickets.sla_start(s.start_columns, r.created_at_service,
                                                                          r.scheduled_at, r.first_seen_at,
                                                                          r.source_created_at) > s.target)))
              UNION ALL
              -- Only a closure between the two windows' lower ends or between their upper ends can have
              -- entered or left (by the closed_at indexes).
              SELECT w.dataset, w.ticket_id
              FROM tickets.all_tickets AS w
              WHERE (p_dataset IS NULL OR w.dataset = p_dataset)
                AND (w.closed_at BETWEEN least(lower(window_then), lower(window_now))
                                     AND greatest(lower(window_then), lower(window_now))
                     OR w.closed_at BETWEEN least(upper(window_then), upper(window_now))
                                        AND greatest(upper(window_then), upper(window_now)))
                AND (w.closed_at <@ window_then) IS DISTINCT FROM (w.closed_at <@ window_now)) AS c;
    END IF;

    WITH changed AS (
        SELECT 'inc'::text AS dataset, unnest(changed_inc) AS ticket_id
        UNION ALL
        SELECT 'crq'::text, unnest(changed_crq)
    ), on_map AS (
        SELECT t.dataset, t.ticket_id, json_build_object(
            'type', 'Feature',
            'id', t.dataset || ':' || t.ticket_id,
            'geometry', public.ST_AsGeoJSON(t.geom, 6)::json,
            'properties', json_build_object(
                'dataset', t.dataset, 'ticket_id', t.ticket_id,
                'state', CASE WHEN t.bucket = 'open' THEN 'open' ELSE 'closed' END,
                'normalized_status', t.normalized_status, 'raw_status', t.raw_status,
                'is_actionable', t.is_actionable, 'cluster', t.cluster, 'cluster_name', t.cluster_name,
                'region', t.region, 'location_name', t.location_name, 'assigned_team', t.assigned_team,
                'owner', t.owner, 'geo_source', t.geo_source, 'sla_start', t.sla_start,
                'sla_start_source', t.sla_start_source,
                'sla_breached', CASE WHEN t.bucket = 'open' THEN now_at - t.sla_start > t.sla_target END,
                'closed_at', t.closed_at, 'mttr_minutes', t.mttr, 'sla_status', t.sla_status)) AS feature
        FROM tickets.ticket_sla AS t
        WHERE (p_dataset IS NULL OR t.dataset = p_dataset)
          AND (t.bucket = 'open' OR t.closed_at <@ window_now)
          AND tickets.dashboard_match(t.cluster, t.cluster_name, t.normalized_status, p_cluster, p_status)
          AND (full_because IS NOT NULL OR (t.dataset = 'inc' AND t.ticket_id = ANY (changed_inc))
                                        OR (t.dataset = 'crq' AND t.ticket_id = ANY (changed_crq)))
    )
    SELECT json_build_object(
        'generated_at', now_at,
        'full', full_because IS NOT NULL,
        'full_because', full_because,
        'token', concat_ws('.', 'm1', basis, oldest_running,
                           (extract(epoch FROM now_at) * 1000000)::bigint),
        'filters', json_build_object('dataset', p_dataset, 'cluster', p_cluster, 'status', p_status,
                                     'window', p_window, 'from', lower(window_now), 'to', upper(window_now)),
        'features', (SELECT COALESCE(json_agg(m.feature ORDER BY m.dataset, m.ticket_id), '[]'::json)
                     FROM on_map AS m),
        'left', (SELECT COALESCE(json_agg(c.dataset || ':' || c.ticket_id ORDER BY c.dataset, c.ticket_id),
                                 '[]'::json)
                 FROM changed AS c
                 WHERE NOT EXISTS (SELECT FROM on_map AS m
                                   WHERE m.dataset = c.dataset AND m.ticket_id = c.ticket_id)),
        'freshness', (SELECT json_object_agg(m.dataset, json_build_object(
                          'watermark', m.metadata->>'source_max_key',
                          'last_success_at', (m.metadata->>'last_success_at')::timestamptz,
                          'minutes_since_success', floor(extract(epoch FROM
                              now_at - (m.metadata->>'last_success_at')::timestamptz) / 60)))
                      FROM tickets.import_meta AS m
                      WHERE p_dataset IS NULL OR m.dataset = p_dataset))
    INTO result;
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION reporting.fn_map_changes(text, text, text, text, text, timestamptz, timestamptz) FROM PUBLIC;
