-- fn_inc_dashboard at a bad week's size (10,000 open, 5,000 closed in the
-- window): every part of the payload (features, metrics, owner and team
-- breakdowns) is built from one pass over the open tickets and one over the
-- window's closures, instead of one pass per part; and a cluster filter finds
-- its tickets by index instead of testing every ticket. Same arguments,
-- errors and payload as before.

-- Every cluster_key that names the same canonical cluster as p_cluster: the
-- code or name asked for, the canonical name, and every alias of it. A
-- ticket whose cluster_key is in the set is a candidate for the filter (the
-- exact rule is still tickets.dashboard_match()).
CREATE FUNCTION tickets.cluster_keys_of(p_cluster text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT k.key)
    FROM (SELECT tickets.cluster_key(p_cluster) AS key
          UNION ALL SELECT tickets.cluster_key(tickets.canonical_cluster(p_cluster))
          UNION ALL SELECT tickets.cluster_key(a.alias) FROM tickets.cluster_aliases AS a
                    WHERE tickets.cluster_key(a.cluster) = tickets.cluster_key(tickets.canonical_cluster(p_cluster))
         ) AS k
    WHERE k.key IS NOT NULL
$$;

CREATE INDEX inc_open_cluster_key_idx ON tickets.inc (tickets.cluster_key(cluster)) WHERE bucket = 'open';
CREATE INDEX inc_cluster_key_closed_at_idx ON tickets.inc (tickets.cluster_key(cluster), closed_at)
    WHERE closed_at IS NOT NULL;
CREATE INDEX crq_open_cluster_key_idx ON tickets.crq (tickets.cluster_key(cluster)) WHERE bucket = 'open';
CREATE INDEX crq_cluster_key_closed_at_idx ON tickets.crq (tickets.cluster_key(cluster), closed_at)
    WHERE closed_at IS NOT NULL;

-- plpgsql with one query text run by EXECUTE, so that it is planned with the
-- arguments' values: with a cluster, by the cluster_key indexes; without,
-- by one scan. %1$s is the cluster condition, 'true' when there is none.
CREATE OR REPLACE FUNCTION reporting.fn_inc_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                                      p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                                      p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
    win tstzrange := tickets.dashboard_window(p_window, p_from, p_to);
    result json;
BEGIN
    EXECUTE format($q$
        WITH open_rows AS MATERIALIZED (
            SELECT o.* FROM tickets.inc_open_sla AS o
            WHERE %1$s AND tickets.dashboard_match(o.cluster, o.cluster_name, o.normalized_status, $1, $2)
        ), closed_rows AS MATERIALIZED (
            SELECT c.* FROM tickets.inc_closed AS c
            WHERE c.closed_at >= lower($4) AND c.closed_at <= upper($4)
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
                        SELECT false, owner, assigned_team, NULL, mttr FROM closed_rows) AS r
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
                          FROM (SELECT max(source_updated_at) AS at FROM tickets.inc) AS newest
                          LEFT JOIN tickets.import_meta AS m ON m.dataset = 'inc'),
            'by_owner', COALESCE((SELECT body FROM by_name WHERE by = 'owner'), '[]'::jsonb)::json,
            'by_team', COALESCE((SELECT body FROM by_name WHERE by = 'team'), '[]'::jsonb)::json)
        $q$,
        CASE WHEN p_cluster IS NULL THEN 'true' ELSE 'tickets.cluster_key(o.cluster) = ANY($5)' END,
        CASE WHEN p_cluster IS NULL THEN 'true' ELSE 'tickets.cluster_key(c.cluster) = ANY($5)' END)
    INTO result
    USING p_cluster, p_status, p_window, win, tickets.cluster_keys_of(p_cluster);
    RETURN result;
END
$fn$;

REVOKE EXECUTE ON FUNCTION reporting.fn_inc_dashboard(text, text, text, timestamptz, timestamptz) FROM PUBLIC;
