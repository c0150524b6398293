-- Closed tickets of either dataset, with the canonical cluster name; the dashboards count closures from it.
CREATE OR REPLACE VIEW tickets.closed_tickets AS
SELECT dataset, ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner,
       closed_at, mttr, sla_status, geom, geo_source
FROM tickets.ticket_sla
WHERE closed_at IS NOT NULL;
