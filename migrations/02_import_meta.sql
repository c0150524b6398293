-- One row per dataset. metadata.source_max_key is the watermark: the newest
-- change-file key applied from the bucket; metadata.last_success_at is when
-- the last run that finished without errors ended.
CREATE TABLE tickets.import_meta (
    dataset    text PRIMARY KEY,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tickets.import_meta (dataset) VALUES ('inc'), ('crq');

CREATE OR REPLACE FUNCTION reporting.fn_tickets_for_map() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
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
                        now() - (m.metadata->>'last_success_at')::timestamptz) / 60)::numeric, 1)))
                FROM tickets.import_meta AS m)))
$$;
