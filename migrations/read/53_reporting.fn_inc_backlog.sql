-- INC's backlog-over-time series (docs/dashboard-api-contract.md).
CREATE OR REPLACE FUNCTION reporting.fn_inc_backlog(p_from date, p_to date, p_cluster text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
    SELECT tickets.backlog('inc', p_from, p_to, p_cluster)
$$;
REVOKE ALL ON FUNCTION reporting.fn_inc_backlog(date, date, text) FROM PUBLIC;
