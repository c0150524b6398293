-- Open INC tickets with their SLA as the map shows it. The source
-- sla_status only means something once a ticket is closed, so the open view
-- derives its own: start = created_at_service, else first_seen_at (about 30%
-- lack the former), age at query time, breach against a configurable target.

CREATE TABLE tickets.sla_settings (
    dataset text PRIMARY KEY,
    target  interval NOT NULL CHECK (target > interval '0')
);
COMMENT ON TABLE tickets.sla_settings IS 'SLA target per dataset; change it with an UPDATE, no migration needed.';
INSERT INTO tickets.sla_settings (dataset, target) VALUES ('inc', interval '24 hours');

-- "Now" for every derived age and window. Tests and what-if queries pin it:
--   SET fleettickets.now = '2026-11-20 09:00+03';   (RESET to follow the clock)
-- or for a whole process: PGOPTIONS='-c fleettickets.now=2026-11-20T09:00+03'.
CREATE FUNCTION tickets.clock() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(NULLIF(current_setting('fleettickets.now', true), '')::timestamptz, now())
$$;

CREATE VIEW tickets.inc_open_sla AS
SELECT i.ticket_id, i.normalized_status, i.raw_status, i.is_actionable,
       i.cluster, COALESCE(a.cluster, i.cluster) AS cluster_name, i.region, i.location_name,
       i.assigned_team, i.owner, i.geom, i.geo_source,
       sla.start AS sla_start,
       sla.start_source AS sla_start_source,
       floor(extract(epoch FROM tickets.clock() - sla.start) / 60)::integer AS age_minutes,
       s.target AS sla_target,
       tickets.clock() - sla.start > s.target AS sla_breached
FROM tickets.inc AS i
CROSS JOIN LATERAL (
    SELECT COALESCE(i.created_at_service, i.first_seen_at) AS start,
           CASE WHEN i.created_at_service IS NOT NULL THEN 'created_at_service'
                WHEN i.first_seen_at IS NOT NULL THEN 'first_seen_at' END AS start_source
) AS sla
LEFT JOIN tickets.sla_settings AS s ON s.dataset = 'inc'
LEFT JOIN tickets.cluster_aliases AS a ON lower(a.alias) = lower(i.cluster)
WHERE i.bucket = 'open';

COMMENT ON VIEW tickets.inc_open_sla IS
    'Open INC tickets; age_minutes and sla_breached are NULL (unknown) when neither start time is known.';
