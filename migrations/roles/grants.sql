-- What each group role may do; run_migrations.py applies this after every
-- run once the roles exist, so objects a later migration adds are covered.
--   fleettickets_owner   owns the schemas and everything in them; runs migrations
--   fleettickets_ingest  the ingest, geocoding and history capture: rows, not schema
--   fleettickets_reader  the map's web app: the reporting functions, nothing else
GRANT USAGE ON SCHEMA tickets TO fleettickets_ingest;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tickets TO fleettickets_ingest;
REVOKE INSERT, UPDATE, DELETE ON tickets.schema_migrations, tickets.schema_read_layer FROM fleettickets_ingest;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA tickets TO fleettickets_ingest;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tickets TO fleettickets_ingest;

GRANT USAGE ON SCHEMA reporting TO fleettickets_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting TO fleettickets_reader;

REVOKE ALL ON SCHEMA tickets, reporting FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting FROM PUBLIC;
