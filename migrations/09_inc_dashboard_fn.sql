-- reporting.fn_inc_dashboard: one JSON payload for the live map. Built from
-- small pieces so that later migrations (12: owner/team breakdowns) extend
-- it without restating it.

CREATE VIEW tickets.inc_closed AS
SELECT i.ticket_id, i.normalized_status, i.cluster, COALESCE(a.cluster, i.cluster) AS cluster_name, i.region,
       i.location_name, i.assigned_team, i.owner, i.closed_at, i.mttr, i.sla_status, i.geom, i.geo_source
FROM tickets.inc AS i
LEFT JOIN tickets.cluster_aliases AS a ON lower(a.alias) = lower(i.cluster)
WHERE i.closed_at IS NOT NULL;

-- p_cluster matches the ticket's code (QOA) or its canonical name (Quarry Road).
CREATE FUNCTION tickets.dashboard_match(p_cluster_code text, p_cluster_name text, p_status text,
                                        p_want_cluster text, p_want_status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_want_cluster IS NULL OR lower(p_cluster_code) = lower(p_want_cluster)
                                   OR lower(p_cluster_name) = lower(p_want_cluster))
       AND (p_want_status IS NULL OR p_status = p_want_status)
$$;

-- The window closures are counted in; every window ends at tickets.clock().
CREATE FUNCTION tickets.dashboard_window(p_window text, p_from timestamptz, p_to timestamptz) RETURNS tstzrange
LANGUAGE plpgsql STABLE AS $$
DECLARE
    current timestamptz := tickets.clock();
BEGIN
    CASE p_window
        WHEN '24h' THEN RETURN tstzrange(current - interval '24 hours', current, '[]');
        WHEN '7d' THEN RETURN tstzrange(current - interval '7 days', current, '[]');
        WHEN '30d' THEN RETURN tstzrange(current - interval '30 days', current, '[]');
        WHEN 'custom' THEN
            IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
                RAISE EXCEPTION 'p_window custom needs p_from and p_to with p_from <= p_to (got % and %)',
                    COALESCE(p_from::text, 'NULL'), COALESCE(p_to::text, 'NULL')
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN tstzrange(p_from, p_to, '[]');
        ELSE
            RAISE EXCEPTION 'p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got %)',
                COALESCE(quote_literal(p_window), 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END
$$;

CREATE FUNCTION tickets.inc_dashboard_open(p_cluster text, p_status text) RETURNS SETOF tickets.inc_open_sla
LANGUAGE sql STABLE AS $$
    SELECT * FROM tickets.inc_open_sla AS o
    WHERE tickets.dashboard_match(o.cluster, o.cluster_name, o.normalized_status, p_cluster, p_status)
$$;

CREATE FUNCTION tickets.inc_dashboard_closed(p_cluster text, p_status text, p_range tstzrange)
RETURNS SETOF tickets.inc_closed
LANGUAGE sql STABLE AS $$
    SELECT * FROM tickets.inc_closed AS c
    WHERE c.closed_at >= lower(p_range) AND c.closed_at <= upper(p_range)
      AND tickets.dashboard_match(c.cluster, c.cluster_name, c.normalized_status, p_cluster, p_status)
$$;

-- The payload as (key, value) parts, so later migrations add keys without
-- restating this. Built as json, not jsonb: thousands of features are
-- concatenated text, three times faster than binary jsonb, and keys keep the
-- order written here.
CREATE FUNCTION tickets.inc_dashboard_parts(p_cluster text, p_status text, p_window text, p_from timestamptz,
                                            p_to timestamptz) RETURNS TABLE (part text, body json)
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    WITH win AS (SELECT tickets.dashboard_window(p_window, p_from, p_to) AS r),
    open_tickets AS (SELECT * FROM tickets.inc_dashboard_open(p_cluster, p_status)),
    closed_tickets AS (SELECT c.* FROM win, tickets.inc_dashboard_closed(p_cluster, p_status, win.r) AS c)
    SELECT 'generated_at', to_json(tickets.clock())
    UNION ALL
    SELECT 'filters', json_build_object('cluster', p_cluster, 'status', p_status, 'window', p_window,
                                        'from', lower(win.r), 'to', upper(win.r))
    FROM win
    UNION ALL
    SELECT 'open', json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(json_build_object(
        'type', 'Feature',
        'id', o.ticket_id,
        'geometry', ST_AsGeoJSON(o.geom, 6)::json,
        'properties', json_build_object(
            'ticket_id', o.ticket_id, 'normalized_status', o.normalized_status,
            'raw_status', o.raw_status, 'is_actionable', o.is_actionable,
            'cluster', o.cluster, 'cluster_name', o.cluster_name, 'region', o.region,
            'location_name', o.location_name, 'assigned_team', o.assigned_team, 'owner', o.owner,
            'sla_start', o.sla_start, 'sla_start_source', o.sla_start_source,
            'age_minutes', o.age_minutes, 'sla_breached', o.sla_breached, 'geo_source', o.geo_source))
        ORDER BY o.sla_start NULLS LAST, o.ticket_id), '[]'::json))
    FROM open_tickets AS o
    UNION ALL
    SELECT 'closed', json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(json_build_object(
        'type', 'Feature',
        'id', c.ticket_id,
        'geometry', ST_AsGeoJSON(c.geom, 6)::json,
        'properties', json_build_object(
            'ticket_id', c.ticket_id, 'normalized_status', c.normalized_status,
            'cluster', c.cluster, 'cluster_name', c.cluster_name, 'region', c.region,
            'location_name', c.location_name, 'assigned_team', c.assigned_team, 'owner', c.owner,
            'closed_at', c.closed_at, 'mttr_minutes', c.mttr, 'sla_status', c.sla_status,
            'geo_source', c.geo_source))
        ORDER BY c.closed_at DESC, c.ticket_id), '[]'::json))
    FROM closed_tickets AS c
    UNION ALL
    SELECT 'metrics', json_build_object(
        'open', o.open, 'actionable', o.actionable, 'breached', o.breached,
        'closed_in_window', c.closed_in_window,
        'mttr_median_minutes', c.mttr_median_minutes, 'mttr_p90_minutes', c.mttr_p90_minutes,
        'geocode_coverage', json_build_object('any_point', o.any_point, 'precise_point', o.precise_point))
    FROM (SELECT count(*) AS open,
                 count(*) FILTER (WHERE is_actionable) AS actionable,
                 count(*) FILTER (WHERE sla_breached) AS breached,
                 round(count(geom)::numeric / NULLIF(count(*), 0), 4) AS any_point,
                 round((count(*) FILTER (WHERE geo_source IN ('feed', 'location')))::numeric
                       / NULLIF(count(*), 0), 4) AS precise_point
          FROM open_tickets) AS o,
         (SELECT count(*) AS closed_in_window,
                 percentile_cont(0.5) WITHIN GROUP (ORDER BY mttr) AS mttr_median_minutes,
                 percentile_cont(0.9) WITHIN GROUP (ORDER BY mttr) AS mttr_p90_minutes
          FROM closed_tickets) AS c
    UNION ALL
    SELECT 'freshness', json_build_object(
        'watermark', m.metadata->>'source_max_key',
        'last_success_at', (m.metadata->>'last_success_at')::timestamptz,
        'content_newest_at', newest.at,
        'content_lag_minutes', floor(extract(epoch FROM tickets.clock() - newest.at) / 60))
    FROM (SELECT max(source_updated_at) AS at FROM tickets.inc) AS newest
    LEFT JOIN tickets.import_meta AS m ON m.dataset = 'inc'
$$;

-- One function, no overloads, so callers may pass untyped NULLs.
CREATE FUNCTION reporting.fn_inc_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                           p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                           p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT json_object_agg(part, body) FROM tickets.inc_dashboard_parts(p_cluster, p_status, p_window, p_from, p_to)
$$;
