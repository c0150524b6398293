-- INC's open tickets with their SLA: open_sla's columns for one dataset, as since migration 08.
CREATE OR REPLACE VIEW tickets.inc_open_sla AS
SELECT ticket_id, normalized_status, raw_status, is_actionable, cluster, cluster_name, region, location_name,
       assigned_team, owner, geom, geo_source, sla_start, sla_start_source, age_minutes, sla_target, sla_breached
FROM tickets.open_sla WHERE dataset = 'inc';
