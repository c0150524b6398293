-- The dashboard of either dataset: the query fn_inc_dashboard ran since
-- migration 18, as text, for the reporting function to run by EXECUTE so that
-- it is planned with the arguments' values (a cluster filter by the
-- cluster_key indexes, the dataset by pruning the other table). Its
-- parameters: $1 cluster, $2 status, $3 window name, $4 window range, $5 the
-- cluster's keys. %1$s and %2$s are the cluster conditions ('true' when there
-- is none), %3$L the dataset. Returning the text, not the payload, spares
-- copying a payload of megabytes through one more function call.
CREATE OR REPLACE FUNCTION tickets.dashboard_query(p_dataset text, p_filtered boolean) RETURNS text
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
                        -- A closure counts for the owner and team its own episode's closure event
                        -- recorded (the capture that first saw it closed: the latest event, as a
                        -- reopened and reclosed ticket has one per episode), else for the ticket's
                        -- current ones. The latest event is this episode's only while the last
                        -- capture saw the ticket closed (closure_watch): reopened, captured and
                        -- closed again since, the episode has no event yet. Not matched on
                        -- closed_at: a resolved ticket's closed_at moves when it is closed, within
                        -- the same episode.
                        SELECT false, CASE WHEN e.found THEN e.owner ELSE c.owner END,
                               CASE WHEN e.found THEN e.assigned_team ELSE c.assigned_team END, NULL, c.mttr
                        FROM closed_rows AS c
                        LEFT JOIN LATERAL (SELECT true AS found, ev.owner, ev.assigned_team
                                           FROM tickets.closure_events AS ev
                                           WHERE ev.dataset = %3$L AND ev.ticket_id = c.ticket_id
                                             AND EXISTS (SELECT FROM tickets.closure_watch AS w
                                                         WHERE w.ticket_id = c.ticket_id AND w.seen_closed)
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
                             'geometry', public.ST_AsGeoJSON(o.geom, 6)::json,
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
                               'geometry', public.ST_AsGeoJSON(c.geom, 6)::json,
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
