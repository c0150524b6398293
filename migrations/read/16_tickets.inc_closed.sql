-- INC's closed tickets, as since migration 09.
CREATE OR REPLACE VIEW tickets.inc_closed AS
SELECT ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner, closed_at,
       mttr, sla_status, geom, geo_source
FROM tickets.closed_tickets WHERE dataset = 'inc';
