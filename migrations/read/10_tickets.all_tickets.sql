-- Either dataset's tickets in one shape. A query that names one dataset
-- reads only that table: the other branch is pruned at planning.
CREATE OR REPLACE VIEW tickets.all_tickets AS
SELECT 'inc'::text AS dataset, ticket_id, normalized_status, raw_status, bucket, is_actionable, cluster, region,
       location_name, assigned_team, owner, sla_status, mttr, closed_at, created_at_service, scheduled_at,
       first_seen_at, source_created_at, source_updated_at, ingested_at, geom, geog, geo_source
FROM tickets.inc
UNION ALL
SELECT 'crq'::text, ticket_id, normalized_status, raw_status, bucket, is_actionable, cluster, region,
       location_name, assigned_team, owner, sla_status, mttr, closed_at, created_at_service, scheduled_at,
       first_seen_at, source_created_at, source_updated_at, ingested_at, geom, geog, geo_source
FROM tickets.crq;
