-- "Now" for every derived age and window. Tests and what-if queries pin it:
--   SET fleettickets.now = '2026-11-20 09:00+03';   (RESET to follow the clock)
-- or for a whole process: PGOPTIONS='-c fleettickets.now=2026-11-20T09:00+03'.
CREATE OR REPLACE FUNCTION tickets.clock() RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(NULLIF(current_setting('fleettickets.now', true), '')::timestamptz, now())
$$;
