-- When a cached result may be asked again: ok and rejected (wrong town)
-- never; not found after a week per attempt; an error after 1 h, 4 h, 16 h …
-- capped at a week.
CREATE OR REPLACE FUNCTION tickets.geocode_due(p_status text, p_attempts integer, p_updated_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE p_status
        WHEN 'not_found' THEN p_updated_at < now() - interval '7 days' * p_attempts
        WHEN 'error' THEN p_updated_at < now() - least(interval '1 hour' * power(4, p_attempts - 1), interval '7 days')
        ELSE false
    END
$$;
