-- run_migrations.py --roles, run once by a role with CREATEROLE (a DBA):
-- the three group roles, and the schemas and everything in them handed to the
-- owner role. Safe to run again. Login roles are then made members:
--   CREATE ROLE fleettickets_migrate LOGIN PASSWORD '…' IN ROLE fleettickets_owner;
--   CREATE ROLE fleettickets_ingest_login LOGIN PASSWORD '…' IN ROLE fleettickets_ingest;
--   CREATE ROLE fleetops_map LOGIN PASSWORD '…' IN ROLE fleettickets_reader;
DO $$
DECLARE
    role_name text;
    obj record;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['fleettickets_owner', 'fleettickets_ingest', 'fleettickets_reader'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        END IF;
    END LOOP;

    ALTER SCHEMA tickets OWNER TO fleettickets_owner;
    ALTER SCHEMA reporting OWNER TO fleettickets_owner;
    -- Sequences of identity columns follow their table.
    FOR obj IN
        SELECT c.oid::regclass AS name, c.relkind
        FROM pg_class AS c
        WHERE c.relnamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (SELECT FROM pg_depend AS d
                          WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO fleettickets_owner',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                        WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, obj.name);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS name FROM pg_proc AS p
        WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO fleettickets_owner', obj.name);
    END LOOP;
    -- Migrations may add a schema; the ingest stages each file in a temporary table.
    EXECUTE format('GRANT CREATE, TEMPORARY ON DATABASE %I TO fleettickets_owner', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO fleettickets_ingest', current_database());
END
$$;
-- Nobody but a schema's owner creates in public: code that searches public
-- (another app's, or ours by mistake) could otherwise run a function a
-- stranger planted there. PostgreSQL 15 already does this for new databases;
-- a database upgraded from 14 or older still lets everyone.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
