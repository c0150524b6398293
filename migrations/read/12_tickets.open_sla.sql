-- Open tickets of either dataset with their SLA age and breach, as the map and the dashboards show them.
CREATE OR REPLACE VIEW tickets.open_sla AS
SELECT t.dataset, t.ticket_id, t.normalized_status, t.raw_status, t.is_actionable, t.cluster, t.cluster_name,
       t.region, t.location_name, t.assigned_team, t.owner, t.geom, t.geo_source, t.sla_start, t.sla_start_source,
       floor(extract(epoch FROM tickets.clock() - t.sla_start) / 60)::integer AS age_minutes,
       t.sla_target,
       tickets.clock() - t.sla_start > t.sla_target AS sla_breached,
       t.geog
FROM tickets.ticket_sla AS t
WHERE t.bucket = 'open';
COMMENT ON VIEW tickets.open_sla IS
    'Open tickets of either dataset with the SLA by their dataset''s rule (tickets.sla_settings); age_minutes and '
    'sla_breached are NULL (unknown) when none of the rule''s start columns is known.';
