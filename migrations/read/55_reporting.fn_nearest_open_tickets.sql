-- Dispatch: the open, actionable tickets nearest a point, nearest first. The
-- geog GiST indexes walk the tickets in distance order (KNN), which PostGIS
-- measures on the sphere for geography; the radius and distance_m use the
-- sphere too, so order, cut-off and figure agree (the spheroid differs by at
-- most ~0.3%).
CREATE OR REPLACE FUNCTION reporting.fn_nearest_open_tickets(p_lat double precision, p_lon double precision,
                                                  p_radius_km double precision DEFAULT 10,
                                                  p_limit integer DEFAULT 20, p_dataset text DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $fn$
DECLARE
    result json;
BEGIN
    PERFORM FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
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
        RAISE EXCEPTION 'p_dataset must be inc, crq, or NULL for both (got %)', tickets.quoted_argument(p_dataset)
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
              AND public.ST_DWithin(t.geog, $1, $2, false)
            ORDER BY t.geog OPERATOR(public.<->) $1
            LIMIT $3
        ), nearest AS (
            SELECT o.*, public.ST_Distance(o.geog, $1, false) AS distance_m
            FROM candidates AS c JOIN tickets.open_sla AS o USING (dataset, ticket_id)
        )
        SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(json_build_object(
            'type', 'Feature',
            'id', n.ticket_id,
            'geometry', public.ST_AsGeoJSON(n.geom, 6)::json,
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
    USING public.ST_SetSRID(public.ST_MakePoint(p_lon, p_lat), 4326)::public.geography, p_radius_km * 1000, p_limit,
          lower(btrim(p_dataset));
    RETURN result;
END
$fn$;
REVOKE ALL ON FUNCTION reporting.fn_nearest_open_tickets(double precision, double precision, double precision,
                                                  integer, text) FROM PUBLIC;
