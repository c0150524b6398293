"""run_migrations.py: ordered, once each, refuses edits, duplicates and failures cleanly."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import run_migrations

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_migrations.py"), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT)


@pytest.fixture
def migrations_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", folder)
    return folder


def test_fresh_database_applies_every_migration_then_rerun_is_a_noop(empty_db, monkeypatch):
    first = run_cli()
    assert first.returncode == 0, first.stderr
    names = [m.name for m in run_migrations.discover()]
    for name in names:
        assert f"Applying {name} … done in" in first.stdout
    applied = [row[0] for row in empty_db.query("SELECT name FROM tickets.schema_migrations ORDER BY name")]
    assert applied == names

    second = run_cli()
    assert second.returncode == 0, second.stderr
    assert "Nothing to apply" in second.stdout
    assert empty_db.scalar("SELECT count(*) FROM tickets.schema_migrations") == len(names)


def test_status_lists_applied_and_pending(empty_db, migrations_copy):
    (migrations_copy / "99_later.sql").write_text("SELECT 1;")
    assert run_cli("--dir", str(ROOT / "migrations")).returncode == 0
    status = run_cli("--status", "--dir", str(migrations_copy))
    assert status.returncode == 0
    assert "applied  01_tickets_schema.sql" in status.stdout
    assert "pending  99_later.sql" in status.stdout


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


def test_duplicate_numbering_is_refused(migrations_copy):
    (migrations_copy / "03_another.sql").write_text("SELECT 1;")
    with pytest.raises(run_migrations.MigrationError, match=r"number 03 is already used"):
        run_migrations.discover(migrations_copy)


def test_a_failing_migration_rolls_back_alone(empty_db, migrations_copy):
    (migrations_copy / "98_good.sql").write_text("CREATE TABLE tickets.good (x int);")
    (migrations_copy / "99_bad.sql").write_text("CREATE TABLE tickets.half (x int);\nSELECT no_such_function();")

    result = run_cli("--dir", str(migrations_copy))

    assert result.returncode == 1
    assert "99_bad.sql failed and was rolled back" in result.stderr
    assert "no_such_function" in result.stderr
    assert empty_db.scalar("SELECT to_regclass('tickets.good')::text") == "tickets.good"
    assert empty_db.scalar("SELECT to_regclass('tickets.half')") is None
    assert empty_db.scalar("SELECT count(*) FROM tickets.schema_migrations WHERE name = '99_bad.sql'") == 0


def test_missing_or_unreachable_database_is_one_line(tmp_path):
    import os
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
    applied_lines = sum(out.count("… done in") for out, _err, _code in results)
    assert applied_lines == len(run_migrations.discover())


def test_15_upgrades_a_database_migrated_by_the_previous_main(empty_db, migrations_copy):
    """Migrate to 14 as the field databases are, add data, then upgrade: the ledger and the tickets carry over."""
    (migrations_copy / "15_edges_and_cluster_keys.sql").unlink()
    for later in migrations_copy.glob("1[6-9]_*.sql"):
        later.unlink()
    assert run_cli("--dir", str(migrations_copy)).returncode == 0
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


def test_19_keeps_inc_history_and_sla_target_on_a_database_migrated_by_the_previous_main(empty_db, migrations_copy):
    """Migrate to 18 as the field databases are, capture some history, then upgrade: it is INC's and it stays."""
    (migrations_copy / "19_read_path_by_dataset.sql").unlink()
    assert run_cli("--dir", str(migrations_copy)).returncode == 0
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
