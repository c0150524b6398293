-- The backlog-over-time series of either dataset, from its daily snapshots.
CREATE OR REPLACE FUNCTION tickets.backlog(p_dataset text, p_from date, p_to date, p_cluster text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'cluster', COALESCE(tickets.canonical_cluster(p_cluster), '(all)'),
        'series', COALESCE(jsonb_agg(jsonb_build_object(
            'date', s.snapshot_date, 'open_backlog', s.open_backlog, 'actionable', s.actionable,
            'breached', s.breached, 'opened', s.opened, 'closed', s.closed) ORDER BY s.snapshot_date), '[]'::jsonb))
    FROM tickets.daily_snapshot AS s
    WHERE s.dataset = tickets.known_dataset(p_dataset)
      AND s.cluster = COALESCE(tickets.canonical_cluster(p_cluster), '(all)')
      AND s.snapshot_date BETWEEN p_from AND p_to
$$;
