-- The window closures are counted in; every window ends at tickets.clock().
CREATE OR REPLACE FUNCTION tickets.dashboard_window(p_window text, p_from timestamptz, p_to timestamptz) RETURNS tstzrange
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT tickets.window_at(p_window, p_from, p_to, tickets.clock())
$$;
