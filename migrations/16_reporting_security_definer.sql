-- The read API is an API for another app's role, not a window on the
-- tables: every reporting function runs with its owner's rights (SECURITY
-- DEFINER) and a pinned search_path with pg_temp last, so a caller can neither
-- see more than the function returns nor plant a same-named object in its own
-- temporary schema. PUBLIC loses EXECUTE on the functions and any access to
-- the two schemas; roles are granted what they need by
-- migrations/roles/grants.sql (see run_migrations.py --roles).
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_proc AS p
        WHERE p.pronamespace = 'reporting'::regnamespace AND p.prokind = 'f'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp', fn);
    END LOOP;
END
$$;

REVOKE ALL ON SCHEMA tickets, reporting FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting FROM PUBLIC;
