"""Least privilege: the ingest cycle runs as a member of fleettickets_ingest only, the map as fleettickets_reader."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from fleettickets import schema
from support.fake_locationiq import FakeLocationIQ
from support.stack import SAMPLES


def test_the_whole_cycle_runs_as_a_member_of_fleettickets_ingest_only(db, bucket, roles, run_import, monkeypatch,
                                                                      tmp_path):
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    fake = FakeLocationIQ(places={"Kilimani": (-1.2893, 36.7833)}).start()
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    monkeypatch.setenv("GEOCODER_API_KEY", "pk.test")
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    bucket.put_samples("inc")
    bucket.put_samples("crq")
    try:
        for dataset, *args in [("inc", "--from-bucket", "--apply"), ("crq", "--from-bucket", "--apply"),
                               ("inc", "--geocode-clusters", "--apply"), ("inc", "--geocode-locations", "--apply"),
                               ("inc", "--capture-history", "--apply"), ("crq", "--capture-history", "--apply"),
                               ("inc", "--status")]:
            outcome = run_import(dataset, *args)
            assert outcome.code == 0, (args, outcome.output)
    finally:
        fake.stop()

    assert db.scalar("SELECT count(*) FROM tickets.inc") > 0 and db.scalar("SELECT count(*) FROM tickets.crq") > 0
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.closure_events GROUP BY 1")).keys() == {"inc", "crq"}
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.daily_snapshot GROUP BY 1")).keys() == {"inc", "crq"}
    assert db.scalar("SELECT status FROM tickets.geo_clusters WHERE cluster = 'Kilimani'") == "ok"
    with psycopg.connect(roles["ingest"], autocommit=True) as conn:
        assert not conn.execute("SELECT pg_has_role('fleettickets_owner', 'MEMBER')").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE tickets.not_mine (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM tickets.schema_migrations")


def test_the_reader_calls_every_reporting_function_and_sees_no_table(db, roles, run_import, tmp_path):
    path = tmp_path / "2026-11-20T06-00-00.csv"
    path.write_bytes((SAMPLES / "inc" / "changes" / "2026-11-20T06-00-00.csv").read_bytes())
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    calls = {
        "fn_tickets_for_map": "SELECT reporting.fn_tickets_for_map()",
        "fn_inc_dashboard": "SELECT reporting.fn_inc_dashboard('Kilimani', NULL, '7d')",
        "fn_inc_backlog": "SELECT reporting.fn_inc_backlog('2026-11-01', '2026-12-31')",
        "fn_crq_dashboard": "SELECT reporting.fn_crq_dashboard('Kilimani', NULL, '7d')",
        "fn_crq_backlog": "SELECT reporting.fn_crq_backlog('2026-11-01', '2026-12-31')",
        "fn_nearest_open_tickets": "SELECT reporting.fn_nearest_open_tickets(-1.29, 36.78)",
    }
    assert set(calls) == {name for (name,) in db.query(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'reporting'::regnamespace")}

    with psycopg.connect(roles["reader"], autocommit=True) as conn:
        for query in calls.values():
            assert conn.execute(query).fetchone()[0] is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("SELECT raw FROM tickets.inc")
    with psycopg.connect(roles["nobody"], autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
        conn.execute(calls["fn_inc_dashboard"])


def test_every_reporting_function_runs_as_its_owner_with_a_pinned_search_path(db):
    functions = db.query("""
        SELECT p.proname, p.prosecdef, p.proconfig FROM pg_proc AS p
        WHERE p.pronamespace = 'reporting'::regnamespace""")
    assert functions
    for name, definer, config in functions:
        assert definer, f"reporting.{name} is not SECURITY DEFINER"
        assert "search_path=pg_catalog, pg_temp" in (config or []), (name, config)
    assert db.scalar("SELECT has_function_privilege('public', 'reporting.fn_inc_dashboard(text, text, text, "
                     "timestamptz, timestamptz)', 'EXECUTE')") is False


def test_migrations_after_roles_run_as_the_owner_and_are_granted(db, roles, migrations_dir_with_a_new_table):
    assert schema.main(["--dir", str(migrations_dir_with_a_new_table)]) == 0

    assert db.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'added_later'") == "fleettickets_owner"
    with psycopg.connect(roles["ingest"], autocommit=True) as conn:
        conn.execute("INSERT INTO tickets.added_later VALUES (1)")


@pytest.fixture
def migrations_dir_with_a_new_table(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, folder)
    (folder / "99_added_later.sql").write_text("CREATE TABLE tickets.added_later (x int);")
    return folder
