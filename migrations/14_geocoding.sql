-- Geocoding bookkeeping: the shared daily request budget and the cool-off
-- that keeps failed lookups from being asked again every 20 minutes.

-- One row per provider day (LocationIQ resets at 00:00 UTC). Every request
-- sent, retries included, takes one unit in its own committed statement, so
-- parallel and repeated runs share the budget.
CREATE TABLE tickets.geocode_budget (
    provider_day date NOT NULL,
    provider     text NOT NULL,
    requests     integer NOT NULL DEFAULT 0,
    exhausted    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (provider_day, provider)
);
COMMENT ON COLUMN tickets.geocode_budget.exhausted IS 'The provider said its daily limit is reached: ask nothing more that day.';

-- When a cached result may be asked again: ok and rejected (wrong town)
-- never; not found after a week per attempt; an error after 1 h, 4 h, 16 h …
-- capped at a week.
CREATE FUNCTION tickets.geocode_due(p_status text, p_attempts integer, p_updated_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE p_status
        WHEN 'not_found' THEN p_updated_at < now() - interval '7 days' * p_attempts
        WHEN 'error' THEN p_updated_at < now() - least(interval '1 hour' * power(4, p_attempts - 1), interval '7 days')
        ELSE false
    END
$$;
