-- The window closures are counted in; every window ends at tickets.clock().
CREATE OR REPLACE FUNCTION tickets.dashboard_window(p_window text, p_from timestamptz, p_to timestamptz) RETURNS tstzrange
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current timestamptz := tickets.clock();
BEGIN
    CASE p_window
        WHEN '24h' THEN RETURN tstzrange(current - interval '24 hours', current, '[]');
        WHEN '7d' THEN RETURN tstzrange(current - interval '7 days', current, '[]');
        WHEN '30d' THEN RETURN tstzrange(current - interval '30 days', current, '[]');
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
