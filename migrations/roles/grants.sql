-- What each group role may do; run_migrations.py applies this after every
-- run once the roles exist, so objects a later migration adds are covered.
--   fleettickets_owner   owns the schemas and everything in them; runs migrations
--   fleettickets_ingest  the ingest, geocoding and history capture: rows, not schema
--   fleettickets_reader  the map's web app: the reporting functions, nothing else
--
-- The ingest gets, table by table, exactly the writes its code makes (proven
-- by tests/sql/test_privileges.py against what a whole cycle writes): nothing it
-- records can be erased with its credential, and what operators set (SLA
-- targets, cluster aliases) cannot be changed with it. A table a later
-- migration adds is readable by the ingest until it is listed here.
GRANT USAGE ON SCHEMA tickets TO fleettickets_ingest;
REVOKE ALL ON ALL TABLES IN SCHEMA tickets FROM fleettickets_ingest;
GRANT SELECT ON ALL TABLES IN SCHEMA tickets TO fleettickets_ingest;
-- The tickets: upserted by the ingest, placed by geocoding.
GRANT INSERT, UPDATE ON tickets.inc, tickets.crq TO fleettickets_ingest;
-- The ledger and the run log: appended to and completed, never erased.
GRANT INSERT, UPDATE ON tickets.ingest_files, tickets.ingest_runs, tickets.rejected_rows TO fleettickets_ingest;
GRANT INSERT ON tickets.ingest_batches TO fleettickets_ingest;
GRANT UPDATE ON tickets.import_meta TO fleettickets_ingest;
-- Geocoding's caches and its daily budget.
GRANT INSERT, UPDATE ON tickets.geo_clusters, tickets.geo_locations, tickets.geocode_budget TO fleettickets_ingest;
-- History: closures are append-only; today's snapshot is replaced whole by each capture.
GRANT INSERT ON tickets.closure_events TO fleettickets_ingest;
GRANT INSERT, UPDATE ON tickets.closure_watch, tickets.history_captures TO fleettickets_ingest;
GRANT INSERT, DELETE ON tickets.daily_snapshot TO fleettickets_ingest;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tickets FROM fleettickets_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA tickets TO fleettickets_ingest;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tickets TO fleettickets_ingest;

GRANT USAGE ON SCHEMA reporting TO fleettickets_reader;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting TO fleettickets_reader;

REVOKE ALL ON SCHEMA tickets, reporting FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting FROM PUBLIC;
