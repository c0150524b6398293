-- Every ticket with its SLA start by its dataset's rule, open or not.
CREATE OR REPLACE VIEW tickets.ticket_sla AS
SELECT t.*, COALESCE(a.cluster, tickets.cluster_label(t.cluster)) AS cluster_name,
       tickets.sla_start(s.start_columns, t.created_at_service, t.scheduled_at, t.first_seen_at,
                         t.source_created_at) AS sla_start,
       tickets.sla_start_source(s.start_columns, t.created_at_service, t.scheduled_at, t.first_seen_at,
                                t.source_created_at) AS sla_start_source,
       s.target AS sla_target
FROM tickets.all_tickets AS t
LEFT JOIN tickets.sla_settings AS s ON s.dataset = t.dataset
LEFT JOIN tickets.cluster_aliases AS a ON tickets.cluster_key(a.alias) = tickets.cluster_key(t.cluster);
