-- INC's dashboard: tickets.dashboard_query's query for 'inc'. Without parallel workers: funnelling
-- 10,000 wide open rows through two workers' tuple queues cost more than the
-- scan it split (measured on the bad-week benchmark).
CREATE OR REPLACE FUNCTION reporting.fn_inc_dashboard(p_cluster text DEFAULT NULL, p_status text DEFAULT NULL,
                                                      p_window text DEFAULT '24h', p_from timestamptz DEFAULT NULL,
                                                      p_to timestamptz DEFAULT NULL) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'
SET max_parallel_workers_per_gather = 0 AS $$
DECLARE
    result json;
BEGIN
    PERFORM FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
    EXECUTE tickets.dashboard_query('inc', p_cluster IS NOT NULL) INTO result
    USING p_cluster, p_status, p_window, tickets.dashboard_window(p_window, p_from, p_to),
          tickets.cluster_keys_of(p_cluster);
    RETURN result;
END
$$;
REVOKE ALL ON FUNCTION reporting.fn_inc_dashboard(text, text, text, timestamptz, timestamptz) FROM PUBLIC;
