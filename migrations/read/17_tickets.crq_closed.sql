-- CRQ's closed tickets, with inc_closed's columns.
CREATE OR REPLACE VIEW tickets.crq_closed AS
SELECT ticket_id, normalized_status, cluster, cluster_name, region, location_name, assigned_team, owner, closed_at,
       mttr, sla_status, geom, geo_source
FROM tickets.closed_tickets WHERE dataset = 'crq';
