-- A window's closures at the instant p_now: the dashboards' window ends at
-- tickets.clock(); the map feed compares a window then and now.
CREATE OR REPLACE FUNCTION tickets.window_at(p_window text, p_from timestamptz, p_to timestamptz,
                                             p_now timestamptz) RETURNS tstzrange
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    CASE p_window
        WHEN '24h' THEN RETURN tstzrange(p_now - interval '24 hours', p_now, '[]');
        WHEN '7d' THEN RETURN tstzrange(p_now - interval '7 days', p_now, '[]');
        WHEN '30d' THEN RETURN tstzrange(p_now - interval '30 days', p_now, '[]');
        WHEN 'custom' THEN
            IF p_from IS NULL OR p_to IS NULL OR p_from > p_to THEN
                RAISE EXCEPTION 'p_window custom needs p_from and p_to with p_from <= p_to (got % and %)',
                    COALESCE(p_from::text, 'NULL'), COALESCE(p_to::text, 'NULL')
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN tstzrange(p_from, p_to, '[]');
        ELSE
            RAISE EXCEPTION 'p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got %)',
                tickets.quoted_argument(p_window)
                USING ERRCODE = 'invalid_parameter_value';
    END CASE;
END
$$;
