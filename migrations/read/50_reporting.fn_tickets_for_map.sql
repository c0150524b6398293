-- Every ticket of either dataset as one GeoJSON FeatureCollection, with each
-- dataset's freshness (docs/dashboard-api-contract.md), measured from
-- tickets.clock() like every lag the read API reports.
CREATE OR REPLACE FUNCTION reporting.fn_tickets_for_map() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
    SELECT jsonb_build_object(
        'type', 'FeatureCollection',
        'features', (
            SELECT COALESCE(jsonb_agg(f.feature ORDER BY f.dataset, f.ticket_id), '[]'::jsonb)
            FROM tickets.ticket_features AS f),
        'summary', jsonb_build_object(
            'freshness', (
                SELECT jsonb_object_agg(m.dataset, jsonb_build_object(
                    'watermark', m.metadata->>'source_max_key',
                    'last_success_at', m.metadata->>'last_success_at',
                    'minutes_since_success', round((extract(epoch FROM
                        tickets.clock() - (m.metadata->>'last_success_at')::timestamptz) / 60)::numeric, 1)))
                FROM tickets.import_meta AS m)))
$$;
REVOKE ALL ON FUNCTION reporting.fn_tickets_for_map() FROM PUBLIC;
