"""Least privilege: the ingest cycle runs as a member of fleettickets_ingest only, the map as fleettickets_reader."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest

from fleettickets import schema
from support.fake_locationiq import FakeLocationIQ
from support.stack import SAMPLES
from support.streamdata import change_file, changes, ticket_row

ROOT = Path(__file__).resolve().parents[2]

WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")

WRITES_MADE = """
SELECT relname, n_tup_ins > 0, n_tup_upd > 0, n_tup_del > 0 FROM pg_stat_user_tables WHERE schemaname = 'tickets'
"""


CYCLE = [("inc", "--from-bucket", "--apply", "--reseed"), ("crq", "--from-bucket", "--apply"),
         ("inc", "--from-bucket", "--apply"), ("inc", "--geocode-clusters", "--apply"),
         ("inc", "--geocode-locations", "--apply"), ("inc", "--capture-history", "--apply"),
         ("crq", "--capture-history", "--apply"), ("inc", "--status"), ("crq", "--check")]
UNKNOWN_PLACES = {(0, "--geocode-clusters"), (1, "--geocode-locations")}
"""(round, action) in which the geocoder finds nothing: the next round asks again, meeting the cached row."""


def whole_cycle(run_import, bucket, db, monkeypatch, *, rounds: int) -> None:
    """Every action cron runs, as the current DATABASE_URL.

    Later rounds meet every upsert's conflict: the same files re-applied (--reseed), a closed ticket reopened,
    and places nobody found asked again after their back-off (time moved on).
    """
    fake = FakeLocationIQ().start()
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    monkeypatch.setenv("GEOCODER_API_KEY", "pk.test")
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    try:
        for round_ in range(rounds):
            bucket.put_samples("inc")
            bucket.put_samples("crq")
            # A row that is rejected (a malformed id).
            rows = [ticket_row("INC000000000777", "2026-11-21 06:00:00"), ticket_row("INC777", "2026-11-21 06:00:00")]
            if round_:
                db.execute("UPDATE tickets.geo_clusters SET updated_at = updated_at - interval '400 days';"
                           "UPDATE tickets.geo_locations SET updated_at = updated_at - interval '400 days'")
                reopened = db.scalar("SELECT ticket_id FROM tickets.closure_watch WHERE seen_closed LIMIT 1")
                rows.append(ticket_row(str(reopened), f"2026-11-21 06:0{round_}:00"))
            bucket.put(changes("inc", "2026-11-21T06-00-00"), change_file(*rows))
            for dataset, *args in CYCLE:
                unknown = (round_, args[0]) in UNKNOWN_PLACES
                fake.places = {} if unknown else {"Kilimani": (-1.2893, 36.7833)}
                outcome = run_import(dataset, *args)
                assert outcome.code in (0, 1), (args, outcome.output)
                assert "permission denied" not in outcome.output, (args, outcome.output)
    finally:
        fake.stop()


def test_the_whole_cycle_runs_as_a_member_of_fleettickets_ingest_only(db, bucket, roles, run_import, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])

    whole_cycle(run_import, bucket, db, monkeypatch, rounds=1)

    assert db.scalar("SELECT count(*) FROM tickets.inc") > 0 and db.scalar("SELECT count(*) FROM tickets.crq") > 0
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.closure_events GROUP BY 1")).keys() == {"inc", "crq"}
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.daily_snapshot GROUP BY 1")).keys() == {"inc", "crq"}
    assert db.scalar("SELECT count(*) FROM tickets.rejected_rows") == 1
    with psycopg.connect(roles["ingest"], autocommit=True) as conn:
        assert not conn.execute("SELECT pg_has_role('fleettickets_owner', 'MEMBER')").fetchone()[0]


def test_the_ingest_may_make_exactly_the_writes_a_whole_cycle_makes(db, bucket, roles, run_import, monkeypatch):
    """What a cycle writes is read from PostgreSQL's own counters, not from our SQL: a grant the cycle never uses
    is one a stolen cron credential could abuse, and a missing one fails the cycle."""
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])

    whole_cycle(run_import, bucket, db, monkeypatch, rounds=3)

    with db.connect() as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        made = {table: {write for write, did in zip(WRITES, flags, strict=False) if did}
                for table, *flags in conn.execute(WRITES_MADE).fetchall()}
        granted = {table: {write for write in WRITES if conn.execute(
            "SELECT has_table_privilege('fleettickets_ingest', %s, %s)", (f"tickets.{table}", write)).fetchone()[0]}
            for table in made}
    assert db.scalar("SELECT status FROM tickets.geo_clusters WHERE cluster = 'Kilimani'") == "ok"
    assert db.scalar("SELECT count(*) FROM tickets.geo_locations WHERE status = 'ok' AND attempts > 1") > 0
    assert made["inc"] == {"INSERT", "UPDATE"}  # the counters did arrive
    assert {table: writes for table, writes in granted.items() if writes != made[table]} == {}


FORBIDDEN = {
    "erase the run log": "DELETE FROM tickets.ingest_runs",
    "erase the ledger": "DELETE FROM tickets.ingest_files",
    "empty the ledger": "TRUNCATE tickets.ingest_files",
    "erase kept rejected rows": "DELETE FROM tickets.rejected_rows",
    "delete tickets": "DELETE FROM tickets.inc",
    "rewrite an SLA target": "UPDATE tickets.sla_settings SET target = target",
    "add an SLA row": "INSERT INTO tickets.sla_settings (dataset) VALUES ('x')",
    "change a cluster alias": "DELETE FROM tickets.cluster_aliases",
    "erase closures": "DELETE FROM tickets.closure_events",
    "erase the geocoding cache": "DELETE FROM tickets.geo_clusters",
    "reset the geocoder budget": "DELETE FROM tickets.geocode_budget",
    "mark a migration applied": "INSERT INTO tickets.schema_migrations (name, checksum) VALUES ('99_x.sql', 'x')",
    "rewind a sequence": "SELECT setval(pg_get_serial_sequence('tickets.ingest_runs', 'run_id'), 1)",
    "create a table": "CREATE TABLE tickets.not_mine (x int)",
    "replace a function": "CREATE OR REPLACE FUNCTION tickets.clock() RETURNS timestamptz LANGUAGE sql "
                          "AS 'SELECT now()'",
    "read the map as the owner": "SET ROLE fleettickets_owner",
}


@pytest.mark.parametrize("statement", FORBIDDEN.values(), ids=FORBIDDEN.keys())
def test_an_ingest_login_cannot_make_a_write_the_ingest_never_makes(db, roles, statement):
    with psycopg.connect(roles["ingest"], autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


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
        "fn_map_changes": "SELECT reporting.fn_map_changes()",
    }
    assert set(calls) == {name for (name,) in db.query(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'reporting'::regnamespace")}

    with psycopg.connect(roles["reader"], autocommit=True) as conn:
        for query in calls.values():
            assert conn.execute(query).fetchone()[0] is not None
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("SELECT raw FROM tickets.inc")
    # As the contract says, word for word.
    said = re.search(r"Any other\s+role gets `(permission denied[^`]*)`",
                     (ROOT / "docs" / "dashboard-api-contract.md").read_text(encoding="utf-8"))
    assert said
    with psycopg.connect(roles["nobody"], autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        conn.execute(calls["fn_inc_dashboard"])
    assert refused.value.diag.message_primary == said[1]


def test_a_table_a_later_migration_adds_is_owned_and_only_readable_until_the_grants_name_it(
        db, roles, migrations_dir_with_a_new_table):
    assert schema.main(["--dir", str(migrations_dir_with_a_new_table)]) == 0

    assert db.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'added_later'") == "fleettickets_owner"
    with psycopg.connect(roles["ingest"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tickets.added_later").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO tickets.added_later VALUES (1)")


def test_migrations_run_with_their_own_credential_while_the_app_keeps_an_ingest_login(
        db, roles, run_import, monkeypatch, migrations_dir_with_a_new_table):
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    monkeypatch.setenv("MIGRATION_DATABASE_URL", roles["owner"])

    assert schema.main(["--dir", str(migrations_dir_with_a_new_table)]) == 0

    assert db.scalar("SELECT tableowner FROM pg_tables WHERE tablename = 'added_later'") == "fleettickets_owner"
    assert run_import("inc", "--status").code == 0


def test_migrations_as_the_app_login_say_which_credential_to_set_not_to_promote_the_app(
        db, roles, monkeypatch, capsys, migrations_dir_with_a_new_table):
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    ingest_login = psycopg.conninfo.conninfo_to_dict(roles["ingest"])["user"]

    assert schema.main(["--dir", str(migrations_dir_with_a_new_table)]) == 1

    err = capsys.readouterr().err
    assert f"{ingest_login!r} is not a member of it: set MIGRATION_DATABASE_URL" in err
    assert "keep the app's DATABASE_URL an ingest login" in err
    assert db.scalar("SELECT to_regclass('tickets.added_later')") is None


@pytest.fixture
def migrations_dir_with_a_new_table(tmp_path):
    folder = tmp_path / "migrations"
    shutil.copytree(schema.MIGRATIONS_DIR, folder)
    (folder / "99_added_later.sql").write_text("CREATE TABLE tickets.added_later (x int);")
    return folder
