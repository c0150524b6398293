-- CRQ's open tickets with their SLA, by CRQ's rule.
CREATE OR REPLACE VIEW tickets.crq_open_sla AS
SELECT ticket_id, normalized_status, raw_status, is_actionable, cluster, cluster_name, region, location_name,
       assigned_team, owner, geom, geo_source, sla_start, sla_start_source, age_minutes, sla_target, sla_breached
FROM tickets.open_sla WHERE dataset = 'crq';
COMMENT ON VIEW tickets.crq_open_sla IS
    'Open CRQ tickets; the same columns and meanings as inc_open_sla, by CRQ''s SLA rule.';
