"""Adopting the database the original system runs: built by its own runner from migrations 01–13 (none of our
tracking), loaded by its importer one upsert per row, its watermark set (run_migrations.py --baseline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from fleettickets import baseline, schema
from support import catalog, hostile, releases
from support.oracle import reference_state
from support.stack import SAMPLES, TestDatabase, create_database, drop_database, table_state
from support.streamdata import change_file, changes, stamp_ago, ticket_row

ORIGINAL = releases.original_files()
REWRITE = "FLEETTICKETS_WRITE_BASELINE_MANIFEST"


def manifest_by_psql(url: str) -> baseline.Manifest:
    """01–13 applied one by one; each object is credited to the file that last made or changed it."""
    objects: dict[str, dict[str, str]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for migration in ORIGINAL:
            releases.psql_file(url, migration.path)
            now = baseline.snapshot(conn)
            objects = {key: objects[key] if key in objects and objects[key]["definition"] == definition
                       else {"definition": definition, "file": migration.name} for key, definition in now.items()}
        major = baseline.server_major(conn)
    return baseline.Manifest({m.name: m.checksum for m in ORIGINAL}, major, objects)


def test_the_manifest_is_what_migrations_01_to_13_make(pg_admin_url):
    scratch = create_database(pg_admin_url, template="template0")
    try:
        made = manifest_by_psql(scratch.url)
    finally:
        drop_database(pg_admin_url, scratch.name)
    path = schema.MIGRATIONS_DIR / baseline.MANIFEST_NAME
    if os.environ.get(REWRITE):
        path.parent.mkdir(exist_ok=True)
        path.write_text(made.as_json(), encoding="utf-8")
    stored = baseline.Manifest.load(schema.MIGRATIONS_DIR)
    assert (stored.files, stored.objects) == (made.files, made.objects), \
        f"{path} differs from what 01–13 make: regenerate it with {REWRITE}=1 ./dev test tests/sql/test_baseline.py"
    assert {"table tickets.inc", "column tickets.inc.mttr", "function tickets.capture_history()",
            "trigger tickets.inc inc_resolve_geom_on_insert", "index tickets.inc_ingested_at_idx"} <= set(made.objects)


def load_as_the_original_importer(db: TestDatabase, files: list[tuple[str, bytes]]) -> None:
    """What the old importer left: one upsert per row, newest source_updated_at wins, the watermark its last key."""
    with db.connect() as conn:
        for name, content in files:
            for ticket_id, row in reference_state([(name, content)], "INC").items():
                conn.execute("""
                    INSERT INTO tickets.inc AS t (ticket_id, raw) VALUES (%s, %s)
                    ON CONFLICT (ticket_id) DO UPDATE SET raw = excluded.raw, ingested_at = now()
                    WHERE tickets.eat_ts(excluded.raw->>'source_updated_at')
                          >= tickets.eat_ts(t.raw->>'source_updated_at')""", (ticket_id, json.dumps(row)))
        conn.execute("""UPDATE tickets.import_meta SET metadata = jsonb_build_object('source_max_key', %s::text,
                                                                                     'last_success_at', now())
                        WHERE dataset = 'inc'""", (changes("inc", files[-1][0][:-4]),))


def export(first: int, count: int, minutes_ago: float, hour: int, status: str) -> tuple[str, bytes]:
    rows = [ticket_row(f"INC{n:012d}", f"2026-11-20 {hour:02d}:00:00", status=status)
            for n in range(first, first + count)]
    return f"{stamp_ago(minutes_ago)}.csv", change_file(*rows).encode()


def test_an_adopted_database_applies_only_what_the_original_importer_had_not(original_db, bucket, run_import):
    # The old importer applied four files and archived them; the export went on while it was paused.
    applied_before = [export(0, 10, 200, 6, "Old 1"), export(5, 10, 180, 7, "Old 2"), export(10, 10, 160, 8, "Old 3"),
                      export(0, 3, 120, 9, "Old 4")]
    load_as_the_original_importer(original_db, applied_before)
    for name, content in applied_before:
        bucket.put(f"automations/inc/processed/{name}", content)
    late = export(30, 2, 140, 9, "Late")  # stamped below the watermark; the old importer never saw it
    stale = (f"{stamp_ago(60)}.csv", change_file(ticket_row("INC000000000001", "2026-11-20 05:00:00",
                                                            status="Older than stored")).encode())
    waiting = [late, export(8, 6, 80, 10, "New 1"), stale, export(40, 3, 40, 11, "New 2")]
    for name, content in waiting:
        bucket.put(changes("inc", name[:-4]), content)
    tickets_before = original_db.scalar("SELECT count(*) FROM tickets.inc")
    rest = [m.name for m in schema.discover().versioned if m.number > 13]
    assert f"apply {len(rest)} ({rest[0]} … {rest[-1]})" in run_migrations(["--status"]).stdout

    refused = run_migrations([])
    assert refused.returncode == 1
    assert "run_migrations.py --baseline" in refused.stderr and "nothing was changed" in refused.stderr
    assert original_db.scalar("SELECT to_regclass('tickets.schema_migrations')") is None

    adopted = run_migrations(["--baseline"])

    assert adopted.returncode == 0, adopted.stderr
    assert "Baselined 01_tickets_schema.sql … 13_crq_columns.sql" in adopted.stdout
    assert f"watermark {changes('inc', applied_before[-1][0][:-4])} carried over" in adopted.stdout
    assert "Applying 14_geocoding.sql" in adopted.stdout and "Applying the read layer" in adopted.stdout
    assert original_db.scalar("SELECT count(*) FROM tickets.inc") == tickets_before
    status = run_import("inc", "--status")
    assert status.code == 0, status.output
    outcome = run_import("inc", "--from-bucket", "--apply")
    assert outcome.code == 0, outcome.output
    assert "catching up" not in outcome.err

    assert table_state(original_db, "inc") == reference_state(applied_before + waiting, "INC")
    assert sorted(key for (key,) in original_db.query("SELECT key FROM tickets.ingest_files")) == \
        sorted(changes("inc", name[:-4]) for name, _ in waiting)
    assert original_db.scalar("SELECT files_applied FROM tickets.ingest_runs") == len(waiting)
    assert sorted(bucket.keys("automations/inc/")) == sorted(
        f"automations/inc/processed/{name}" for name, _ in applied_before + waiting)
    assert run_import("inc", "--check").out.startswith("inc: healthy")
    assert "nothing new" in run_import("inc", "--from-bucket", "--apply").out
    assert original_db.scalar("SELECT count(*) FROM tickets.ingest_files") == len(waiting)


def test_an_adopted_database_has_the_schema_a_fresh_deploy_makes(original_db, db):
    assert run_migrations(["--baseline"], original_db).returncode == 0
    adopted = catalog_of(original_db)
    fresh = catalog_of(db)
    assert [line for line in catalog.differences(adopted, fresh) if "schema_baseline" not in line] == []
    assert "Nothing to apply" in run_migrations([], original_db).stdout
    status = run_migrations(["--status"], original_db).stdout
    assert "baselined 13_crq_columns.sql" in status and "applied  14_geocoding.sql" in status


@pytest.mark.parametrize("change, named", [
    ("ALTER TABLE tickets.geo_locations DROP COLUMN distance_km; "
     "ALTER TABLE tickets.rejected_rows ALTER COLUMN line TYPE bigint",
     ["column tickets.geo_locations.distance_km: missing (made by 01_tickets_schema.sql",
      "column tickets.rejected_rows.line: here bigint NOT NULL; 11_ingest_ledger.sql makes integer NOT NULL"]),
    ("ALTER TABLE tickets.inc ADD COLUMN notes text",
     ["column tickets.inc.notes: not made by migrations 01–13 (text)"]),
    ("ALTER TABLE tickets.inc DROP CONSTRAINT inc_geo_source_check",
     ["constraint tickets.inc inc_geo_source_check: missing (made by 01_tickets_schema.sql"]),
    ("DROP TABLE tickets.rejected_rows", ["table tickets.rejected_rows: missing (made by 11_ingest_ledger.sql"]),
    ("CREATE OR REPLACE FUNCTION tickets.to_bool(p text) RETURNS boolean LANGUAGE sql IMMUTABLE "
     "AS $$ SELECT p = 'yes' $$",
     ["function tickets.to_bool(text): here returns boolean language sql immutable body md5"]),
    # Finding 8: the original map login's trigger ran as the owner during --baseline, and as the ingest after.
    ("CREATE FUNCTION public.planted_audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; "
     "CREATE TRIGGER planted_audit BEFORE UPDATE ON tickets.sla_settings FOR EACH ROW "
     "EXECUTE FUNCTION public.planted_audit()",
     ["trigger tickets.sla_settings planted_audit: not made by migrations 01–13 (CREATE TRIGGER planted_audit "
      "BEFORE UPDATE ON tickets.sla_settings FOR EACH ROW EXECUTE FUNCTION public.planted_audit()); look at it "
      "with SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'planted_audit'"]),
    # Finding 9: our trigger function, made SECURITY DEFINER by the original app, ran as the owner for every ticket.
    ("ALTER FUNCTION tickets.set_ticket_geom() SECURITY DEFINER",
     ["function tickets.set_ticket_geom(): here returns trigger language plpgsql volatile security definer"]),
    ("CREATE RULE planted AS ON INSERT TO tickets.inc DO ALSO NOTIFY planted",
     ["rule tickets.inc planted: not made by migrations 01–13"]),
    ("ALTER TABLE tickets.inc ENABLE ROW LEVEL SECURITY; CREATE POLICY planted ON tickets.inc USING (true)",
     ["table tickets.inc: here row level security; 01_tickets_schema.sql makes ",
      "policy tickets.inc planted: not made by migrations 01–13"]),
    ("CREATE FUNCTION public.ddl_spy() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$; "
     "CREATE EVENT TRIGGER ddl_spy ON ddl_command_end EXECUTE FUNCTION public.ddl_spy()",
     ["event_trigger ddl_spy: not made by migrations 01–13 (on ddl_command_end runs public.ddl_spy()"]),
    ("CREATE OR REPLACE FUNCTION tickets.forbid_change() RETURNS trigger LANGUAGE plpgsql "
     "AS $$BEGIN RETURN NEW; END$$",
     ["function tickets.forbid_change(): here returns trigger language plpgsql volatile body md5"]),
    # Finding 10: migration 16 made another team's function in reporting SECURITY DEFINER and revoked it.
    ("CREATE FUNCTION reporting.team_kpis() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
     ["function reporting.team_kpis(): not made by migrations 01–13 (returns integer language sql volatile body md5 "]),
], ids=["missing column and another type", "extra column", "missing check", "missing table",
        "a function generated columns compute with", "a trigger another login planted",
        "our trigger function made owner-rights", "a rule", "row security and a policy", "an event trigger",
        "a function of ours nothing after 13 recreates", "another team's function in reporting"])
def test_a_database_whose_structure_differs_is_refused_naming_each_difference(original_db, change, named):
    original_db.execute(change)
    before = catalog_of(original_db)

    outcome = run_migrations(["--baseline"])

    assert outcome.returncode == 1
    for difference in named:
        assert f"refused: {difference}" in outcome.stdout
    assert f"{len(named)} differences in structure that holds data" in outcome.stderr
    assert "nothing was changed" in outcome.stderr
    assert catalog_of(original_db) == before
    status = run_migrations(["--status"]).stdout
    assert "--baseline would refuse" in status and all(difference in status for difference in named)


def test_following_the_refusals_advice_lets_the_adoption_go_on(original_db):
    original_db.execute("ALTER TABLE tickets.geo_locations DROP COLUMN distance_km")
    refused = run_migrations(["--baseline"])
    assert refused.returncode == 1 and "Make each match what the named migration makes" in refused.stderr
    # What 01_tickets_schema.sql makes of the column the refusal named.
    original_db.execute("ALTER TABLE tickets.geo_locations ADD COLUMN distance_km double precision")

    adopted = run_migrations(["--baseline"])

    assert adopted.returncode == 0, adopted.stderr
    assert "refused" not in adopted.stdout and "Applying the read layer" in adopted.stdout


def test_differences_that_hold_no_data_are_printed_and_the_adoption_goes_on(original_db):
    original_db.execute("""
        CREATE OR REPLACE FUNCTION reporting.fn_tickets_for_map() RETURNS jsonb LANGUAGE sql STABLE
            AS $$ SELECT '{}'::jsonb $$;
        DROP INDEX tickets.inc_ingested_at_idx;
        CREATE TABLE tickets.original_runner_log (name text);""")

    outcome = run_migrations(["--baseline"])

    assert outcome.returncode == 0, outcome.stderr
    for line in ("note: function reporting.fn_tickets_for_map(): here returns jsonb language sql stable body md5",
                 "note: index tickets.inc_ingested_at_idx: missing (made by 10_inc_history_capture.sql",
                 "note: table tickets.original_runner_log: not made by migrations 01–13"):
        assert line in outcome.stdout
    assert "(3 differences noted above)" in outcome.stdout
    noted = original_db.scalar("SELECT differences FROM tickets.schema_baseline WHERE name = '01_tickets_schema.sql'")
    assert len(noted) == 3


@pytest.mark.parametrize("stored, carried", [
    ("automations/inc/changes/2026-11-20T09-00-00.csv", "automations/inc/changes/2026-11-20T09-00-00.csv"),
    ("2026-11-20T09-00-00.csv", "automations/inc/changes/2026-11-20T09-00-00.csv"),
    ("2026-11-20T09-00-00", "automations/inc/changes/2026-11-20T09-00-00.csv"),
], ids=["key", "file name", "stamp"])
def test_the_old_watermark_is_carried_over_in_our_key_form(original_db, stored, carried):
    original_db.execute("UPDATE tickets.import_meta SET metadata = jsonb_build_object('source_max_key', %s::text) "
                        "WHERE dataset = 'inc'", (stored,))
    assert run_migrations(["--baseline"]).returncode == 0
    assert original_db.query("SELECT metadata->>'source_max_key', metadata->>'adopted_through' "
                             "FROM tickets.import_meta WHERE dataset = 'inc'") == [(carried, carried)]


@pytest.mark.parametrize("stored", ["2026-13-40T09-00-00", "last-file", "2031-01-01T09-00-00.csv"],
                         ids=["no such time", "no stamp", "ahead of now"])
def test_a_watermark_that_names_no_change_file_is_refused_saying_what_to_set(original_db, stored):
    original_db.execute("UPDATE tickets.import_meta SET metadata = jsonb_build_object('source_max_key', %s::text) "
                        "WHERE dataset = 'inc'", (stored,))
    outcome = run_migrations(["--baseline"])
    assert outcome.returncode == 1
    assert f"watermark names no change file of a past time (inc: '{stored}')" in outcome.stderr
    assert original_db.scalar("SELECT to_regclass('tickets.schema_migrations')") is None
    # The advice: set it to the key of the last file the importer applied.
    original_db.execute("UPDATE tickets.import_meta SET metadata = metadata || jsonb_build_object('source_max_key', "
                        "'automations/inc/changes/2026-11-20T09-00-00.csv') WHERE dataset = 'inc'")
    assert run_migrations(["--baseline"]).returncode == 0


def test_baseline_refuses_a_database_this_runner_deployed_and_an_empty_one(db, empty_db):
    deployed = run_migrations(["--baseline"], db)
    assert deployed.returncode == 1 and "already deployed by this runner" in deployed.stderr
    empty = run_migrations(["--baseline"], empty_db)
    assert empty.returncode == 1 and "nothing to adopt" in empty.stderr
    assert empty_db.scalar("SELECT to_regclass('tickets.schema_migrations')") is None


def test_the_cutover_runbook_keeps_the_map_answering_and_ends_with_least_privilege(original_db, bucket, run_import,
                                                                                    monkeypatch):
    """docs/deployment-and-operations.md, "Cutover from the original system", steps 3 to 6 as written."""
    suffix = f"{os.getpid()}_{original_db.name.rsplit('_', 1)[1]}"
    map_login = f"ft_cut_map_{suffix}"
    logins = {"owner": f"ft_cut_owner_{suffix}", "ingest": f"ft_cut_ingest_{suffix}"}
    with original_db.connect() as conn:  # the map as the original system had it: its own grants
        conn.execute(sql.SQL("CREATE ROLE {0} LOGIN; GRANT USAGE ON SCHEMA tickets, reporting TO {0}; "
                             "GRANT SELECT ON ALL TABLES IN SCHEMA tickets TO {0}").format(sql.Identifier(map_login)))
    map_url = psycopg.conninfo.make_conninfo(original_db.url, user=map_login)

    def the_map_answers() -> bool:
        with psycopg.connect(map_url) as conn:
            return conn.execute("SELECT reporting.fn_tickets_for_map()->>'type'").fetchone() == ("FeatureCollection",)

    try:
        assert the_map_answers()
        roles = run_migrations(["--roles"])  # step 3
        assert roles.returncode == 0, roles.stderr
        assert "the next deploy" in roles.stdout and "applies the grants" in roles.stdout
        with original_db.connect() as conn:
            for group, login in logins.items():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(login), sql.Identifier(f"fleettickets_{group}")))
            conn.execute(sql.SQL("GRANT fleettickets_reader TO {0}; ALTER ROLE {0} SET statement_timeout = '30s'; "
                                 "ALTER ROLE {0} CONNECTION LIMIT 20; "
                                 "ALTER ROLE {0} SET idle_in_transaction_session_timeout = '60s'")
                         .format(sql.Identifier(map_login)))
        urls = {group: psycopg.conninfo.make_conninfo(original_db.url, user=login) for group, login in logins.items()}
        as_owner = {"MIGRATION_DATABASE_URL": urls["owner"]}
        assert "--baseline would record 13 files as baselined" in run_migrations(["--status"], env=as_owner).stdout

        adopted = run_migrations(["--baseline"], env=as_owner)  # step 5

        assert adopted.returncode == 0, adopted.stderr
        assert the_map_answers()
        again = run_migrations(["--roles"])
        assert again.returncode == 0 and "grants applied" in again.stdout
        advice = f"warning: {map_login} holds rights of its own on tickets or reporting"
        assert advice in again.stdout
        revoke = again.stdout.split(advice)[1].split("(granted before they existed?): ")[1].split(" (then")[0]
        original_db.execute(revoke)
        assert hostile.warnings_but_the_beds(run_migrations(["--roles"]).stdout) == []
        assert the_map_answers()
        with psycopg.connect(map_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM tickets.inc")
        bucket.put(changes("inc", stamp_ago(5)), change_file(ticket_row("INC000000000077", "2026-11-20 10:00:00")))
        monkeypatch.setenv("DATABASE_URL", urls["ingest"])
        outcome = run_import("inc", "--from-bucket", "--apply")  # step 6
        assert outcome.code == 0, outcome.output
        assert original_db.scalar("SELECT count(*) FROM tickets.inc") == 1
        assert original_db.scalar("SELECT pg_get_userbyid(relowner) FROM pg_class "
                                  "WHERE oid = 'tickets.ingest_batches'::regclass") == "fleettickets_owner"
    finally:
        with original_db.connect() as conn:
            for login in [*logins.values(), map_login]:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def run_migrations(args: list[str], database: TestDatabase | None = None,
                          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """run_migrations.py as the deploy runs it: its own process, its own output."""
    environment = {**os.environ, **(env or {})}
    if database is not None:
        environment["DATABASE_URL"] = database.url
    return subprocess.run([sys.executable, "run_migrations.py", *args], cwd=schema.MIGRATIONS_DIR.parent,
                          env=environment, capture_output=True, text=True, timeout=300, check=False)


def catalog_of(database: TestDatabase) -> dict[str, list[tuple]]:
    with database.connect() as conn:
        return catalog.snapshot(conn)


def test_an_ingest_before_the_adoption_says_run_the_migrations_and_writes_nothing(original_db, bucket, run_import):
    """Finding 10: a run scheduled before the cutover failed in seven lines that never said what to do, and left
    a run row 'running'."""
    bucket.put_samples("inc")
    before = catalog_of(original_db)

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert outcome.err.strip().splitlines() == [
        "inc: error: this database is not deployed by this release (no tickets.schema_migrations): run the "
        "migrations: python run_migrations.py (or, for the original system's database, --baseline); nothing was "
        "written"]
    assert catalog_of(original_db) == before
    assert original_db.scalar("SELECT count(*) FROM tickets.inc") == 0
    assert bucket.keys("automations/inc/changes/") == [f"automations/inc/changes/{p.name}" for p in
                                                       sorted((SAMPLES / "inc" / "changes").glob("*.csv"))]


def test_an_original_runners_own_schema_migrations_is_named_and_the_advice_leads_to_the_adoption(original_db):
    """Finding 10: taken for ours, it sent the operator in a circle (deploy: 'use --baseline'; --baseline:
    'already deployed')."""
    original_db.execute("CREATE TABLE tickets.schema_migrations (version integer PRIMARY KEY, run_on date); "
                        "INSERT INTO tickets.schema_migrations VALUES (13, '2025-06-01')")
    before = catalog_of(original_db)
    for args in ([], ["--baseline"], ["--status"]):
        outcome = run_migrations(args)
        assert outcome.returncode == 1, args
        assert "tickets.schema_migrations is not this runner's (its columns: run_on, version; ours: applied_at, " \
               "checksum, duration_ms, name)" in outcome.stderr
    assert catalog_of(original_db) == before

    original_db.execute("ALTER TABLE tickets.schema_migrations RENAME TO original_schema_migrations")
    adopted = run_migrations(["--baseline"])
    assert adopted.returncode == 0, adopted.stderr
    assert "note: table tickets.original_schema_migrations: not made by migrations 01–13" in adopted.stdout


def test_another_teams_view_over_a_table_19_drops_is_refused_before_the_maintenance_window(original_db):
    """Finding 10: --status predicted a clean adoption, then migration 19 stopped on the view inside the window."""
    original_db.execute("CREATE SCHEMA finance; "
                        "CREATE VIEW finance.daily_backlog AS SELECT * FROM tickets.inc_daily_snapshot")
    before = catalog_of(original_db)
    named = ("finance.daily_backlog is bound to tickets.inc_daily_snapshot, which a migration after 13 drops; look "
             "at it with \\d+ finance.daily_backlog")

    status = run_migrations(["--status"]).stdout
    assert "--baseline would refuse" in status and named in status
    refused = run_migrations(["--baseline"])
    assert refused.returncode == 1 and f"refused: {named}" in refused.stdout
    assert catalog_of(original_db) == before

    original_db.execute("DROP VIEW finance.daily_backlog")  # as the line says, by its owner
    assert run_migrations(["--baseline"]).returncode == 0
