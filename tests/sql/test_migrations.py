"""run_migrations.py: versioned files once each, the read layer whenever it changed, one transaction a deploy.

Upgrades start from databases the previous release's own tree and runner
built (tests/support/releases.py); databases are compared over the catalog
(tests/support/catalog.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from fleettickets import schema
from support import catalog, picture, releases
from support.stack import TestDatabase, create_database, drop_database

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_migrations.py"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", folder)
    return folder


def following(migrations: Path) -> int:
    """The number the next versioned migration takes."""
    return max(int(path.name.split("_", 1)[0]) for path in migrations.glob("*.sql")) + 1


@pytest.fixture
def previous_release(tmp_path: Path) -> Path:
    """The landed release's whole tree, runner included, to build databases the way the field did."""
    return releases.checkout(releases.PREVIOUS_RELEASE, tmp_path / "previous-release")


@pytest.fixture
def release_before_21(tmp_path: Path) -> Path:
    """The release migration 21's upgrade started from in the field: 01-19, its duplicate aliases allowed."""
    return releases.checkout(releases.RELEASE_BEFORE_21, tmp_path / "release-before-21")


@pytest.fixture
def versioned_only_release(tmp_path: Path) -> Path:
    """The last release before the read layer, to build a database at migration N the way the field did."""
    return releases.checkout(releases.VERSIONED_ONLY_RELEASE, tmp_path / "versioned-only-release")


@pytest.fixture
def another_db(pg_admin_url: str):
    """A second empty database, for comparing two ways of building one."""
    databases: list[TestDatabase] = []

    def make() -> TestDatabase:
        databases.append(create_database(pg_admin_url, template="template0"))
        return databases[-1]

    yield make
    for database in databases:
        drop_database(pg_admin_url, database.name)


def snapshot(database: TestDatabase) -> dict[str, list[tuple]]:
    with database.connect() as conn:
        return catalog.snapshot(conn)


def migrate(database: TestDatabase, *args: str) -> subprocess.CompletedProcess:
    result = run_cli(*args, env=env_for(database))
    assert result.returncode == 0, result.stderr
    return result


def env_for(database: TestDatabase) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database.url}


def test_fresh_database_applies_every_migration_then_rerun_is_a_noop(empty_db, monkeypatch):
    first = run_cli()
    assert first.returncode == 0, first.stderr
    tree = schema.discover()
    names = [m.name for m in tree.versioned]
    for name in names:
        assert f"Applying {name} … done in" in first.stdout
    assert re.search(rf"^Applying the read layer \({len(tree.read)} files; not applied to this database before\) … "
                     r"done in \d+ ms$", first.stdout, re.M)
    applied = [row[0] for row in empty_db.query("SELECT name FROM tickets.schema_migrations ORDER BY name")]
    assert applied == names
    assert empty_db.query("SELECT name, checksum FROM tickets.schema_read_layer ORDER BY name") == [
        (f.name, f.checksum) for f in tree.read]

    second = run_cli()
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("Nothing to apply")
    assert "read layer" in second.stdout and "current" in second.stdout
    assert empty_db.scalar("SELECT count(*) FROM tickets.schema_migrations") == len(names)


def test_status_lists_applied_and_pending(empty_db, migrations_copy):
    (migrations_copy / "99_later.sql").write_text("SELECT 1;")
    assert run_cli("--dir", str(ROOT / "migrations")).returncode == 0
    status = run_cli("--status", "--dir", str(migrations_copy))
    assert status.returncode == 0
    assert "applied  01_tickets_schema.sql" in status.stdout
    assert "pending  99_later.sql" in status.stdout
    assert status.stdout.rstrip().endswith(f"read layer: current ({len(schema.discover().read)} files); the next "
                                           "deploy re-applies it with the pending migrations")


def test_an_edited_applied_migration_is_refused_naming_the_file(empty_db, migrations_copy):
    assert run_cli("--dir", str(migrations_copy)).returncode == 0
    edited = migrations_copy / "02_import_meta.sql"
    edited.write_text(edited.read_text() + "\n-- tweak\n")
    (migrations_copy / "99_later.sql").write_text("CREATE TABLE tickets.later (x int);")

    result = run_cli("--dir", str(migrations_copy))

    assert result.returncode == 1
    assert result.stderr.startswith("run_migrations: error: 02_import_meta.sql was edited after it was applied")
    assert "Traceback" not in result.stderr
    assert empty_db.scalar("SELECT to_regclass('tickets.later')") is None


def test_duplicate_numbering_and_bad_names_are_refused(migrations_copy):
    (migrations_copy / "03_another.sql").write_text("SELECT 1;")
    with pytest.raises(schema.MigrationError, match=r"number 03 is already used"):
        schema.discover(migrations_copy)
    (migrations_copy / "03_another.sql").unlink()
    (migrations_copy / "read" / "51_reporting.fn_other.sql").write_text("SELECT 1;")
    with pytest.raises(schema.MigrationError, match=r"number 51 is already used by 51_reporting.fn_inc_dashboard"):
        schema.discover(migrations_copy)
    (migrations_copy / "read" / "51_reporting.fn_other.sql").unlink()
    (migrations_copy / "read" / "99_public.planted.sql").write_text("SELECT 1;")
    with pytest.raises(schema.MigrationError, match=r"99_public.planted.sql: files in read/ are named NN_tickets"):
        schema.discover(migrations_copy)


def test_a_failing_deploy_rolls_back_whole(empty_db, migrations_copy):
    """A deploy is one transaction: the good file before the bad one, and the read layer, are not applied either."""
    assert run_cli().returncode == 0
    before = snapshot(empty_db)
    (migrations_copy / "98_good.sql").write_text("CREATE TABLE tickets.good (x int);")
    (migrations_copy / "99_bad.sql").write_text("CREATE TABLE tickets.half (x int);\nSELECT no_such_function();")

    result = run_cli("--dir", str(migrations_copy))

    assert result.returncode == 1
    line, = result.stderr.splitlines()
    assert line.startswith("run_migrations: error: 99_bad.sql failed: function no_such_function() does not exist")
    assert line.endswith("the deploy was rolled back and nothing of it is applied")
    assert snapshot(empty_db) == before
    assert empty_db.scalar("SELECT count(*) FROM tickets.schema_migrations WHERE name LIKE '9%'") == 0


def test_a_failing_read_file_rolls_back_the_pending_migrations_with_it(empty_db, migrations_copy):
    assert run_cli().returncode == 0
    before = snapshot(empty_db)
    (migrations_copy / "98_good.sql").write_text("CREATE TABLE tickets.good (x int);")
    (migrations_copy / "read" / "99_reporting.fn_broken.sql").write_text(
        "CREATE OR REPLACE FUNCTION reporting.fn_broken() RETURNS int LANGUAGE sql AS $$ SELECT nothing $$;")

    result = run_cli("--dir", str(migrations_copy))

    assert result.returncode == 1
    assert result.stderr.startswith("run_migrations: error: read/99_reporting.fn_broken.sql failed: column "
                                    "\"nothing\" does not exist")
    assert snapshot(empty_db) == before


def test_missing_or_unreachable_database_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    missing = run_cli(env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "run_migrations: error: missing DATABASE_URL: set it to the PostgreSQL URL, "
        "e.g. postgresql://fleettickets@db:5432/tracksolid_db"]

    env["DATABASE_URL"] = "postgresql://someone:s3cretpw@127.0.0.1:1/nowhere"
    unreachable = run_cli(env=env)
    assert unreachable.returncode == 1
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_migrations: error: cannot connect to the database")
    assert "s3cretpw" not in unreachable.stderr


def test_concurrent_deploys_apply_each_migration_once(empty_db):
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run_migrations.py")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(*p.communicate(), p.returncode) for p in procs]
    assert all(code == 0 for _out, _err, code in results), results
    outputs = "".join(out for out, _err, _code in results)
    assert len(re.findall(r"^Applying \d\d_\S+ … done in", outputs, re.M)) == len(schema.discover().versioned)
    assert len(re.findall(r"^Applying the read layer", outputs, re.M)) == 1


def test_15_upgrades_a_database_migrated_by_the_previous_main(empty_db, versioned_only_release):
    """Migrate to 14 as the field databases are, add data, then upgrade: the ledger and the tickets carry over."""
    assert releases.migrate_with(versioned_only_release, empty_db.url, up_to=14).returncode == 0
    empty_db.execute("""
        INSERT INTO tickets.inc (ticket_id, raw) VALUES
            ('INC000000000001', '{"cluster": " QOA ", "bucket": "open", "first_seen_at": "2026-11-20 06:00:00"}');
        INSERT INTO tickets.ingest_files (dataset, key, etag, status, rows_read)
            VALUES ('inc', 'automations/inc/changes/2026-11-20T06-00-00.csv', 'e1', 'applied', 1)""")
    assert empty_db.scalar("SELECT cluster_name FROM tickets.inc_open_sla") == " QOA "  # the bug 15 fixes

    upgrade = run_cli()

    assert upgrade.returncode == 0, upgrade.stderr
    assert "Applying 15_edges_and_cluster_keys.sql … done in" in upgrade.stdout
    assert empty_db.query("SELECT rows_read, blank_lines FROM tickets.ingest_files") == [(1, 0)]
    assert empty_db.scalar("SELECT cluster_name FROM tickets.inc_open_sla") == "Quarry Road"
    assert empty_db.scalar("SELECT tickets.capture_history('inc')->>'snapshot_rows'") == "2"
    assert empty_db.query("SELECT cluster FROM tickets.inc_daily_snapshot ORDER BY 1") == [("(all)",), ("Quarry Road",)]


def test_19_keeps_inc_history_and_sla_target_on_a_database_migrated_by_the_previous_main(
        empty_db, versioned_only_release):
    """Migrate to 18 as the field databases are, capture some history, then upgrade: it is INC's and it stays."""
    assert releases.migrate_with(versioned_only_release, empty_db.url, up_to=18).returncode == 0
    empty_db.execute("""
        INSERT INTO tickets.inc (ticket_id, raw) VALUES
            ('INC000000000001', '{"cluster": "QOA", "bucket": "closed", "closed_at": "2026-11-20 07:00:00",
                                  "assigned_team": "Splicing Team A"}'),
            ('INC000000000002', '{"cluster": "Karen", "bucket": "open", "first_seen_at": "2026-11-20 06:00:00"}');
        UPDATE tickets.sla_settings SET target = interval '12 hours' WHERE dataset = 'inc';
        INSERT INTO tickets.sla_settings (dataset, target) VALUES ('crq', interval '48 hours');  -- set by hand
        SET fleettickets.now = '2026-11-20 18:00+03';
        SELECT tickets.capture_history();""")
    events = empty_db.query("SELECT * FROM tickets.closure_events")
    snapshot = empty_db.query("SELECT * FROM tickets.inc_daily_snapshot ORDER BY cluster")
    captured = empty_db.scalar("SELECT last_captured_at FROM tickets.history_capture_meta")
    assert len(events) == 1 and len(snapshot) == 3

    upgrade = run_cli()

    assert upgrade.returncode == 0, upgrade.stderr
    assert "Applying 19_read_path_by_dataset.sql … done in" in upgrade.stdout
    assert empty_db.query("SELECT * FROM tickets.closure_events") == [(*events[0], "inc")]
    assert empty_db.query("SELECT * FROM tickets.inc_daily_snapshot ORDER BY cluster") == snapshot
    assert empty_db.query("SELECT * FROM tickets.history_captures") == [("inc", captured)]
    assert empty_db.query("SELECT dataset, target, start_columns FROM tickets.sla_settings ORDER BY 1") == [
        ("crq", dt.timedelta(hours=48), ["scheduled_at", "created_at_service", "first_seen_at"]),
        ("inc", dt.timedelta(hours=12), ["created_at_service", "first_seen_at"])]
    assert empty_db.scalar("SELECT sla_start_source FROM tickets.inc_open_sla") == "first_seen_at"


# -- the read layer -----------------------------------------------------------------------------------------------

# Objects whose definition this tree changes on purpose since PREVIOUS_RELEASE (tests/support/releases.py): the
# parsers and the read API's quoting and token, written without a backslash in a plain literal (migration 27 and
# the read layer), the same under any standard_conforming_strings.
CHANGED_SINCE_RELEASE = {"tickets.eat_ts", "tickets.to_number", "tickets.strip_network_codes",
                         "tickets.quoted_argument", "reporting.fn_map_changes"}
TRACKING = "tickets.schema_read_layer"


def test_a_fresh_database_equals_one_upgraded_from_the_previous_release(empty_db, another_db, previous_release):
    released = releases.migrate_with(previous_release, empty_db.url)
    assert released.returncode == 0, released.stderr
    at_release = snapshot(empty_db)

    upgrade = migrate(empty_db)
    fresh = another_db()
    migrate(fresh)

    assert "Applying the read layer" in upgrade.stdout
    assert not catalog.differences(snapshot(fresh), snapshot(empty_db))
    # No change in behaviour: what moved is the tracking table alone, and the objects changed on purpose.
    moved = {row.split(": ", 2)[2] for row in catalog.differences(at_release, snapshot(empty_db))}
    unexpected = [row for row in moved if TRACKING not in row
                  and not any(name in row for name in CHANGED_SINCE_RELEASE)]
    assert not unexpected, unexpected


def test_rows_stored_with_a_time_of_seven_digits_are_read_again_by_the_upgrade(empty_db, previous_release):
    """Migration 27: eat_ts reads 7 to 9 fractional digits. A row the previous release stored with such times has
    them as null and its version ordered by its file's time: the upgrade reads them, orders the version by its own
    time, and moves ingested_at so that the next capture sees the closure it now reads."""
    released = releases.migrate_with(previous_release, empty_db.url)
    assert released.returncode == 0, released.stderr
    raw = {"ticket_id": "INC000000000007", "bucket": "closed", "normalized_status": "closed",
           "source_updated_at": "2026-11-20 05:00:00.1234567", "closed_at": "2026-11-20 04:30:00.7654321"}
    empty_db.execute("INSERT INTO tickets.inc (ticket_id, raw, source_file, source_line, version_at, ingested_at) "
                     "VALUES (%s, %s, '2026-12-04T06-00-00.csv', 2, '2026-12-04 03:00+00', '2026-12-04 03:01+00')",
                     (raw["ticket_id"], json.dumps(raw)))
    untouched = dict(raw, ticket_id="INC000000000008", source_updated_at="2026-11-20 05:00:00.123",
                     closed_at="2026-11-20 04:30:00")
    empty_db.execute("INSERT INTO tickets.inc (ticket_id, raw, source_file, source_line, version_at, ingested_at) "
                     "VALUES (%s, %s, 'f.csv', 3, '2026-11-20 02:00:00.123+00', '2026-12-04 03:01+00')",
                     (untouched["ticket_id"], json.dumps(untouched)))
    assert empty_db.scalar("SELECT closed_at FROM tickets.inc WHERE ticket_id = 'INC000000000007'") is None

    migrate(empty_db)

    assert empty_db.query("SELECT ticket_id, source_updated_at, closed_at, version_at, ingested_at > now() - "
                          "interval '1 hour' FROM tickets.inc ORDER BY 1") == [
        ("INC000000000007", dt.datetime(2026, 11, 20, 2, 0, 0, 123456, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 20, 1, 30, 0, 765432, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 20, 2, 0, 0, 123456, tzinfo=dt.UTC), True),
        ("INC000000000008", dt.datetime(2026, 11, 20, 2, 0, 0, 123000, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC),
         dt.datetime(2026, 11, 20, 2, 0, 0, 123000, tzinfo=dt.UTC), False)]


def test_a_changed_read_file_is_re_applied_and_the_result_equals_a_fresh_database(empty_db, another_db,
                                                                                   migrations_copy):
    migrate(empty_db, "--dir", str(migrations_copy))
    dashboard = migrations_copy / "read" / "51_reporting.fn_inc_dashboard.sql"
    dashboard.write_text(dashboard.read_text().replace("    RETURN result;", "    RETURN result;  -- edited"))

    files = len(schema.discover().read)
    status = run_cli("--status", "--dir", str(migrations_copy), env=env_for(empty_db))
    assert (f"read layer: differs from what was applied; the next deploy re-applies 1 of {files} files:\n"
            "  changed  read/51_reporting.fn_inc_dashboard.sql\n") in status.stdout
    deploy = migrate(empty_db, "--dir", str(migrations_copy))
    fresh = another_db()
    migrate(fresh, "--dir", str(migrations_copy))

    assert (f"Applying the read layer (1 of {files} files; changed: 51_reporting.fn_inc_dashboard.sql) … done"
            in deploy.stdout)
    assert "-- edited" in empty_db.scalar("SELECT prosrc FROM pg_proc WHERE proname = 'fn_inc_dashboard'")
    assert not catalog.differences(snapshot(fresh), snapshot(empty_db))
    assert "read layer: current" in run_cli("--status", "--dir", str(migrations_copy), env=env_for(empty_db)).stdout


# The row each read object's definition lives in: CREATE OR REPLACE writes a new one even when nothing differs.
DEFINITION_VERSIONS = """
SELECT c.oid::regclass::text, r.xmin::text FROM pg_class AS c JOIN pg_rewrite AS r ON r.ev_class = c.oid
WHERE c.relnamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace) AND c.relkind = 'v'
UNION ALL
SELECT p.pronamespace::regnamespace::text || '.' || p.proname, p.xmin::text FROM pg_proc AS p
WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
"""
# What the server itself binds to a view (views and SQL-standard bodies record it in pg_depend), transitively: a
# witness of "uses" that is not the deploy's own reading of the files.
BOUND_TO = """
WITH RECURSIVE bound (oid) AS (
    SELECT %s::regclass::oid
    UNION
    SELECT COALESCE(r.ev_class, d.objid) FROM bound
    JOIN pg_depend AS d ON d.refobjid = bound.oid AND d.deptype = 'n'
    LEFT JOIN pg_rewrite AS r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
    WHERE d.classid IN ('pg_rewrite'::regclass, 'pg_proc'::regclass)
)
SELECT oid::regclass::text FROM bound
"""


def definition_versions(database: TestDatabase) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, version in database.query(DEFINITION_VERSIONS):
        found[name] = found.get(name, "") + version  # overloads: one name, every version
    return found


def test_a_changed_read_file_re_applies_itself_and_what_uses_it_and_nothing_else(db, migrations_copy):
    bound = {name for (name,) in db.query(BOUND_TO, ("tickets.open_sla",)) if name != "tickets.open_sla"}
    before = definition_versions(db)
    view = migrations_copy / "read" / "12_tickets.open_sla.sql"
    view.write_text(view.read_text() + "-- edited\n")

    deploy = migrate(db, "--dir", str(migrations_copy))

    after = definition_versions(db)
    replaced = {name for name in before if after[name] != before[name]}
    assert "tickets.open_sla" in replaced
    assert bound and bound <= replaced, "a view built on the changed one was not re-applied"
    kept = set(before) - replaced
    assert {"tickets.clock", "tickets.all_tickets", "reporting.fn_inc_backlog"} <= kept
    reapplied = [f for f in schema.discover(migrations_copy).read if f.defines & replaced]
    assert re.search(rf"Applying the read layer \({len(reapplied)} of \d+ files; changed: 12_tickets.open_sla.sql; "
                     rf"and {len(reapplied) - 1} that use them\)", deploy.stdout)
    # Each re-applied file but the changed one names something re-applied before it.
    for i, read_file in enumerate(reapplied[1:], start=1):
        assert read_file.uses(frozenset().union(*(f.defines for f in reapplied[:i]))), read_file.name


def test_a_read_object_dropped_by_hand_is_named_by_status_and_recreated_by_the_next_deploy(db):
    db.execute("DROP FUNCTION reporting.fn_crq_backlog(date, date, text)")

    status = run_cli("--status", env=env_for(db))
    deploy = migrate(db)

    assert "  missing  read/54_reporting.fn_crq_backlog.sql" in status.stdout
    assert "missing from the database: 54_reporting.fn_crq_backlog.sql" in deploy.stdout
    assert db.scalar("SELECT to_regprocedure('reporting.fn_crq_backlog(date, date, text)') IS NOT NULL")
    assert migrate(db).stdout.startswith("Nothing to apply")


ENTRY_POINTS = """
SELECT p.oid::regprocedure::text, l.lanname::text, p.prosrc FROM pg_proc AS p JOIN pg_language AS l ON l.oid = p.prolang
WHERE p.pronamespace = 'reporting'::regnamespace OR p.oid = 'tickets.capture_history(text)'::regprocedure
"""
FIRST_STATEMENT = {"sql": re.compile(r"^\s*(?:--[^\n]*\n\s*)*([^;]*);"),
                   "plpgsql": re.compile(r"\bBEGIN\s+(?:--[^\n]*\n\s*)*([^;]*);")}


def test_every_reporting_function_and_the_history_capture_pass_the_read_gate_first(db):
    """The deploy's one lock order (migrations/read/README.md) holds only if every path that reads a view takes the
    gate before anything else: a new reporting function without it fails here."""
    entry_points = db.query(ENTRY_POINTS)
    assert len(entry_points) >= 7
    for name, language, body in entry_points:
        first = FIRST_STATEMENT[language].search(body)
        assert first and re.fullmatch(r"(?:SELECT|PERFORM) FROM tickets\.read_gate", first[1].strip()), name


def test_applying_the_read_layer_twice_changes_nothing(db):
    before = snapshot(db)
    with db.connect() as conn, conn.transaction():
        for read_file in schema.discover().read:
            conn.execute(read_file.sql)
    assert snapshot(db) == before


def test_a_versioned_drop_cascade_is_repaired_by_the_read_layer_in_the_same_deploy(empty_db, another_db,
                                                                                   migrations_copy):
    """Flyway's classic: a versioned change drops a view and, by CASCADE, everything built on it."""
    migrate(empty_db, "--dir", str(migrations_copy))
    (migrations_copy / f"{following(migrations_copy)}_rebuild_all_tickets.sql").write_text(
        "DROP VIEW tickets.all_tickets CASCADE;")

    migrate(empty_db, "--dir", str(migrations_copy))
    fresh = another_db()
    migrate(fresh, "--dir", str(migrations_copy))

    assert not catalog.differences(snapshot(fresh), snapshot(empty_db))
    assert empty_db.scalar("SELECT count(*) FROM tickets.inc_open_sla") == 0


def test_a_removed_read_file_warns_and_leaves_its_object(empty_db, migrations_copy):
    migrate(empty_db, "--dir", str(migrations_copy))
    (migrations_copy / "read" / "54_reporting.fn_crq_backlog.sql").unlink()

    status = run_cli("--status", "--dir", str(migrations_copy), env=env_for(empty_db))
    deploy = migrate(empty_db, "--dir", str(migrations_copy))

    assert "  removed  reporting.fn_crq_backlog: its file is gone, the object stays" in status.stdout
    assert ("warning: migrations/read/ no longer defines reporting.fn_crq_backlog; it stays in the database as it "
            "is (only a versioned migration drops an object)") in deploy.stdout
    assert empty_db.scalar("SELECT to_regprocedure('reporting.fn_crq_backlog(date, date, text)') IS NOT NULL")
    assert deploy.stdout.count("Applying the read layer") == 1
    assert migrate(empty_db, "--dir", str(migrations_copy)).stdout.startswith("Nothing to apply")

    # As the warning says: a versioned migration drops it.
    (migrations_copy / f"{following(migrations_copy)}_drop_fn_crq_backlog.sql").write_text(
        "DROP FUNCTION reporting.fn_crq_backlog(date, date, text);")
    migrate(empty_db, "--dir", str(migrations_copy))
    assert empty_db.scalar("SELECT to_regprocedure('reporting.fn_crq_backlog(date, date, text)') IS NULL")
    assert "read layer: current" in run_cli("--status", "--dir", str(migrations_copy), env=env_for(empty_db)).stdout


def test_a_renumbered_read_file_is_not_a_removal(empty_db, migrations_copy):
    migrate(empty_db, "--dir", str(migrations_copy))
    read = migrations_copy / "read"
    (read / "54_reporting.fn_crq_backlog.sql").rename(read / "59_reporting.fn_crq_backlog.sql")

    deploy = migrate(empty_db, "--dir", str(migrations_copy))

    assert "warning" not in deploy.stdout
    assert "new: 59_reporting.fn_crq_backlog.sql" in deploy.stdout


def test_a_deploy_waits_a_bounded_time_behind_a_query_holding_a_view(empty_db, migrations_copy):
    migrate(empty_db, "--dir", str(migrations_copy))
    view = migrations_copy / "read" / "13_tickets.inc_open_sla.sql"
    view.write_text(view.read_text() + "COMMENT ON VIEW tickets.inc_open_sla IS 'changed';\n")
    before = snapshot(empty_db)
    env = {**env_for(empty_db), "FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT": "0.5"}

    with empty_db.connect() as reader, reader.transaction():
        reader.execute("SELECT count(*) FROM tickets.inc_open_sla")  # holds the view until it commits
        holder = reader.info.backend_pid
        started = time.monotonic()
        blocked = run_cli("--dir", str(migrations_copy), env=env)
        waited = time.monotonic() - started

    assert blocked.returncode == 1
    assert waited < 10
    # It names what it waited for (a table under the view, or the view) and the session holding it.
    assert re.match(rf"run_migrations: error: the deploy waited 0.5 s for tickets\.\w+, which a running query "
                    rf"holds: pid {holder} \(role ", blocked.stderr)
    assert "FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT" in blocked.stderr
    assert snapshot(empty_db) == before
    # As it says: raise the wait past the query's end (here it ends after a second), and the deploy goes through.
    with empty_db.connect() as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM tickets.inc_open_sla")
        ends = threading.Timer(1.0, reader.execute, ("COMMIT",))
        ends.start()
        raised = run_cli("--dir", str(migrations_copy),
                         env={**env, "FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT": "30"})
        ends.join()
    assert raised.returncode == 0, raised.stderr
    assert snapshot(empty_db) != before


STORAGE_DEPENDENTS = """
SELECT DISTINCT p.oid
FROM pg_depend AS d JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
WHERE d.classid IN ('pg_class'::regclass, 'pg_attrdef'::regclass, 'pg_trigger'::regclass, 'pg_constraint'::regclass)
  AND p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
"""
ROUTINES = """
SELECT p.oid, p.pronamespace::regnamespace::text || '.' || p.proname, p.prosrc FROM pg_proc AS p
WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
"""
VIEWS = """
SELECT c.oid::regclass::text FROM pg_class AS c
WHERE c.relnamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace) AND c.relkind IN ('v', 'm')
"""


def test_the_read_layer_holds_every_view_and_function_nothing_stored_depends_on(db):
    """Storage-bound: referenced (pg_depend) by an index, a generated column, a trigger or a constraint, or called
    by such a function. Those stay in versioned files; every other view and function has its one read file."""
    read_files = schema.discover().read
    in_read_layer = {name for f in read_files for name in f.defines}
    assert all(schema.read_object(f.name) in f.defines for f in read_files), "a file defines its name"
    with db.connect() as conn:
        routines = {oid: (name, source) for oid, name, source in conn.execute(ROUTINES).fetchall()}
        bound = {routines[oid][0] for (oid,) in conn.execute(STORAGE_DEPENDENTS).fetchall()}
        views = {name for (name,) in conn.execute(VIEWS).fetchall()}
    while True:  # what a storage-bound function calls is storage-bound too
        called = {name for name, _source in routines.values() for caller, source in routines.values()
                  if caller in bound and re.search(rf"\b{re.escape(name)}\(", source)}
        if called <= bound:
            break
        bound |= called

    assert bound, "eat_ts and cluster_key, at least, are storage-bound"
    assert not in_read_layer & bound, "storage-bound objects belong in versioned migrations"
    every = {name for name, _source in routines.values()} | views
    assert every - bound == in_read_layer


# -- 21: one alias per form the joins use ---------------------------------------------------------------------------

QOA_TICKET = """INSERT INTO tickets.inc (ticket_id, raw) VALUES
    ('INC000000000001', '{"cluster": "QOA", "bucket": "open", "is_actionable": "true",
                          "first_seen_at": "2026-11-20 06:00:00"}')"""


def test_21_merges_aliases_the_joins_read_as_one_and_refuses_another(empty_db, release_before_21):
    assert releases.migrate_with(release_before_21, empty_db.url).returncode == 0
    empty_db.execute(QOA_TICKET)
    empty_db.execute("INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES ('qoa ', 'Quarry Road')")
    # The bug: one ticket, two rows; and a QOA ticket can no longer be written (canonical_cluster finds two).
    assert empty_db.scalar("SELECT count(*) FROM tickets.inc_open_sla") == 2

    migrate(empty_db)

    assert empty_db.query("SELECT alias, cluster FROM tickets.cluster_aliases WHERE cluster = 'Quarry Road'") == \
        [("QOA", "Quarry Road")]
    assert empty_db.scalar("SELECT count(*) FROM tickets.inc_open_sla") == 1
    empty_db.execute("UPDATE tickets.inc SET raw = raw || '{\"owner\": \"x\"}'")  # a QOA ticket is written again
    with pytest.raises(psycopg.errors.UniqueViolation, match="cluster_aliases_cluster_key"):
        empty_db.execute("INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES (' Qoa', 'Quarry Road')")


def test_21_stops_on_aliases_naming_different_clusters_and_its_advice_works(empty_db, release_before_21):
    assert releases.migrate_with(release_before_21, empty_db.url).returncode == 0
    empty_db.execute("INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES ('qoa ', 'Pipeline')")

    refused = run_cli(env=env_for(empty_db))

    assert refused.returncode == 1
    assert "'QOA' → Quarry Road, 'qoa ' → Pipeline" in refused.stderr
    assert empty_db.scalar("SELECT count(*) FROM tickets.schema_migrations WHERE name LIKE '2%'") == 0
    # As the message says: delete the wrong one, deploy again.
    empty_db.execute("DELETE FROM tickets.cluster_aliases WHERE alias = 'qoa '")
    migrate(empty_db)
    assert empty_db.scalar("SELECT count(*) FROM tickets.cluster_aliases") == 2


MAP_CALLS = (
    "SELECT reporting.fn_tickets_for_map()",
    "SELECT reporting.fn_inc_dashboard(NULL, NULL, '7d', NULL, NULL)",
    "SELECT reporting.fn_crq_dashboard(NULL, NULL, '30d', NULL, NULL)",
    "SELECT reporting.fn_inc_backlog(current_date - 30, current_date)",
    "SELECT reporting.fn_nearest_open_tickets(-1.29, 36.78, 5, 10, 'inc')",
    "SELECT reporting.fn_map_changes()",
)


def test_map_calls_queue_behind_repeated_deploys_and_none_fails(db, roles, migrations_copy, monkeypatch, capsys):
    """migrations/read/README.md promises that map calls queue behind a deploy. As in production (the map's login,
    the ingest's history capture, deploys by the owner), none may end in a deadlock or any other error, and every
    deploy goes through, whatever it re-applies: the whole layer, one view and what uses it, versioned files."""
    monkeypatch.setenv("MIGRATION_DATABASE_URL", roles["owner"])
    stop = threading.Event()
    answered: list[str] = []
    failed: list[str] = []

    def keep_calling(login: str, call: str) -> None:
        with psycopg.connect(login, autocommit=True) as conn:
            while not stop.is_set():
                try:
                    conn.execute(call).fetchone()
                    answered.append(call)
                except psycopg.Error as error:
                    failed.append(f"{call}: {error}")

    callers = [threading.Thread(target=keep_calling, args=(roles["reader"], call)) for call in MAP_CALLS * 2]
    capture = "SELECT tickets.capture_history('inc')"
    callers.append(threading.Thread(target=keep_calling, args=(roles["ingest"], capture)))
    for caller in callers:
        caller.start()
    read = migrations_copy / "read"
    try:
        for deploy in range(12):
            if deploy % 3 == 0:
                db.execute("DELETE FROM tickets.schema_read_layer")
            elif deploy % 3 == 1:
                view = read / "12_tickets.open_sla.sql"
                view.write_text(view.read_text() + f"-- deploy {deploy}\n")
            else:
                (migrations_copy / f"{following(migrations_copy)}_note.sql").write_text(
                    f"COMMENT ON TABLE tickets.inc IS 'deploy {deploy}';")
            assert schema.main(["--dir", str(migrations_copy)]) == 0, capsys.readouterr().err
    finally:
        stop.set()
        for caller in callers:
            caller.join()

    assert not failed, (f"{len(failed)} of {len(failed) + len(answered)} calls failed: "
                        f"{sorted({f.splitlines()[0] for f in failed})}")
    assert {call for call in MAP_CALLS} <= set(answered)


TABLES_PICTURE = ROOT / "migrations" / "picture" / "tables.sql"


def test_the_tables_picture_is_what_a_fresh_migration_makes(db):
    """tickets.inc is the sum of eight versioned files: migrations/picture/tables.sql shows the result."""
    with db.connect() as conn:
        rendered = picture.render(conn)
    if os.environ.get("FLEETTICKETS_WRITE_TABLES_PICTURE") == "1":
        TABLES_PICTURE.write_text(rendered, encoding="utf-8")
    assert TABLES_PICTURE.read_text(encoding="utf-8") == rendered, \
        "migrations/picture/tables.sql is not what the migrations make: FLEETTICKETS_WRITE_TABLES_PICTURE=1 rewrites it"
