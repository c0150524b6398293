-- One GeoJSON feature per ticket of either dataset; a ticket without a
-- point yet keeps a null geometry so the map can list it aside.
CREATE OR REPLACE VIEW tickets.ticket_features AS
    SELECT t.dataset, t.ticket_id, jsonb_build_object(
        'type', 'Feature',
        'id', t.ticket_id,
        'geometry', public.ST_AsGeoJSON(t.geom)::jsonb,
        'properties', jsonb_build_object(
            'dataset', t.dataset,
            'ticket_id', t.ticket_id,
            'normalized_status', t.raw->>'normalized_status',
            'bucket', t.raw->>'bucket',
            'is_actionable', t.raw->>'is_actionable',
            'cluster', t.raw->>'cluster',
            'region', t.raw->>'region',
            'location_name', t.raw->>'location_name',
            'assigned_team', t.raw->>'assigned_team',
            'owner', t.raw->>'owner',
            'geo_source', t.geo_source)) AS feature
    FROM (
        SELECT 'inc'::text AS dataset, ticket_id, raw, geom, geo_source FROM tickets.inc
        UNION ALL
        SELECT 'crq'::text, ticket_id, raw, geom, geo_source FROM tickets.crq
    ) AS t;
