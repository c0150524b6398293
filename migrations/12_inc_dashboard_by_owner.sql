-- Owner and team breakdowns in the dashboard payload, under the same
-- filters and window as its metrics; an empty owner or team is grouped as
-- 'unassigned'.

CREATE FUNCTION tickets.inc_dashboard_breakdown(p_by text, p_cluster text, p_status text, p_range tstzrange)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH open_by AS (
        SELECT COALESCE(NULLIF(btrim(CASE p_by WHEN 'owner' THEN o.owner ELSE o.assigned_team END), ''),
                        'unassigned') AS name,
               count(*) AS open, count(*) FILTER (WHERE o.sla_breached) AS breached
        FROM tickets.inc_dashboard_open(p_cluster, p_status) AS o
        GROUP BY 1
    ), closed_by AS (
        SELECT COALESCE(NULLIF(btrim(CASE p_by WHEN 'owner' THEN c.owner ELSE c.assigned_team END), ''),
                        'unassigned') AS name,
               count(*) AS closed_in_window,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY c.mttr) AS mttr_median_minutes
        FROM tickets.inc_dashboard_closed(p_cluster, p_status, p_range) AS c
        GROUP BY 1
    )
    SELECT COALESCE(jsonb_agg(jsonb_build_object(
               'name', name, 'open', COALESCE(o.open, 0), 'breached', COALESCE(o.breached, 0),
               'closed_in_window', COALESCE(c.closed_in_window, 0), 'mttr_median_minutes', c.mttr_median_minutes)
           ORDER BY COALESCE(o.open, 0) DESC, name), '[]'::jsonb)
    FROM open_by AS o FULL JOIN closed_by AS c USING (name)
$$;

CREATE OR REPLACE FUNCTION reporting.fn_inc_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                                      p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                                      p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT json_object_agg(parts.part, parts.body)
    FROM (
        SELECT part, body FROM tickets.inc_dashboard_parts(p_cluster, p_status, p_window, p_from, p_to)
        UNION ALL
        SELECT breakdown.part, tickets.inc_dashboard_breakdown(breakdown.by, p_cluster, p_status, win.r)::json
        FROM (SELECT tickets.dashboard_window(p_window, p_from, p_to) AS r) AS win,
             (VALUES ('by_owner', 'owner'), ('by_team', 'team')) AS breakdown (part, by)
    ) AS parts
$$;

-- The backlog-over-time series for the trend chart, from the daily snapshots.
-- p_cluster (code or canonical name) NULL means all clusters.
CREATE FUNCTION reporting.fn_inc_backlog(p_from date, p_to date, p_cluster text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT jsonb_build_object(
        'cluster', COALESCE(tickets.canonical_cluster(p_cluster), '(all)'),
        'series', COALESCE(jsonb_agg(jsonb_build_object(
            'date', s.snapshot_date, 'open_backlog', s.open_backlog, 'actionable', s.actionable,
            'breached', s.breached, 'opened', s.opened, 'closed', s.closed) ORDER BY s.snapshot_date), '[]'::jsonb))
    FROM tickets.inc_daily_snapshot AS s
    WHERE s.cluster = COALESCE(tickets.canonical_cluster(p_cluster), '(all)')
      AND s.snapshot_date BETWEEN p_from AND p_to
$$;
