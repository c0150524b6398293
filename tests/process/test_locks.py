"""Every advisory lock is named once, in locks.py; the SQL side takes the same numbers."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from fleettickets import locks

ROOT = Path(__file__).resolve().parents[2]
LOCK_CALL = re.compile(r"pg_(?:try_)?advisory(?:_xact)?_lock\((\d+),\s*(\d+)\)")


def test_every_lock_a_migration_takes_is_in_the_registry():
    taken = {(path.name, int(namespace), int(number))
             for path in sorted((ROOT / "migrations").rglob("*.sql"))
             for namespace, number in LOCK_CALL.findall(path.read_text())}
    assert taken, "the history capture takes the INC and history locks"
    assert {namespace for _name, namespace, _number in taken} == {locks.NAMESPACE}
    assert {number for _name, _namespace, number in taken} <= set(locks.LOCKS.values())
    # The capture waits for a running ingest of its dataset, then takes its own.
    capture = ROOT / "migrations" / "read" / "30_tickets.capture_history.sql"
    assert (capture.name, locks.NAMESPACE, locks.LOCKS["history"]) in taken
    assert (f"pg_advisory_xact_lock({locks.NAMESPACE}, CASE wanted WHEN 'inc' THEN {locks.LOCKS['inc']} "
            f"ELSE {locks.LOCKS['crq']} END)") in capture.read_text()


def test_python_takes_locks_only_through_the_registry():
    for path in [*ROOT.glob("fleettickets/*.py"), *ROOT.glob("inc/*.py"), *ROOT.glob("crq/*.py")]:
        if path.name != "locks.py":
            assert "pg_advisory" not in path.read_text(), f"{path.name} takes a lock without locks.py"


def test_lock_numbers_are_distinct():
    assert len(set(locks.LOCKS.values())) == len(locks.LOCKS)


def test_a_taken_lock_is_refused_to_another_session(db):
    with db.connect() as holder, db.connect() as other:
        assert locks.try_lock(holder, "inc")
        assert not locks.try_lock(other, "inc")
        assert locks.try_lock(other, "crq")
        locks.unlock(holder, "inc")
        assert locks.try_lock(other, "inc")


STRANGER_TAKES = "SELECT pg_try_advisory_lock(%s, %s)"


def held_as(url: str, name: str) -> psycopg.Connection:
    """A session of `url`'s login holding our lock `name`, as any login may: advisory locks have no privileges."""
    conn = psycopg.connect(url, autocommit=True, application_name="the map's pool")
    assert conn.execute(STRANGER_TAKES, locks.key(name)).fetchone()[0]
    return conn


@pytest.mark.parametrize("dataset", ["inc", "crq"])
def test_a_stranger_holding_the_ingest_lock_fails_the_run_and_check_naming_it(db, bucket, roles, run_import,
                                                                               monkeypatch, dataset):
    """Finding 4: the map's login took the ingest's key; every run used to exit 0, "this is normal". Each
    dataset's own lock, as the docs promise for both."""
    bucket.put_samples(dataset)
    reader = psycopg.conninfo.conninfo_to_dict(roles["reader"])["user"]
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    with held_as(roles["reader"], dataset) as stranger:
        pid = stranger.info.backend_pid
        blocked = run_import(dataset, "--from-bucket", "--apply")
        check = run_import(dataset, "--check")
        other = "crq" if dataset == "inc" else "inc"
        bucket.put_samples(other)
        unaffected = run_import(other, "--from-bucket", "--apply")

    assert blocked.code == 1
    assert f"the {dataset} lock is held by a session that is not a fleettickets run: pid {pid} (role {reader}, " \
           "application \"the map's pool\")" in blocked.err
    assert f"SELECT pg_terminate_backend({pid})" in blocked.err
    assert db.scalar(f"SELECT count(*) FROM tickets.{dataset}") == 0
    assert check.code == 1 and f"the {dataset} lock is held by a session that is not a fleettickets run: pid " \
        f"{pid}" in check.out
    assert unaffected.code == 0, unaffected.output  # the other dataset's lock is its own
    # Once it lets go (ended by a DBA, as the line says), the next run applies.
    assert run_import(dataset, "--from-bucket", "--apply").code == 0
    assert db.scalar(f"SELECT count(*) FROM tickets.{dataset}") > 0


@pytest.mark.parametrize("dataset", ["inc", "crq"])
def test_an_overlapping_run_of_our_own_is_still_normal(db, bucket, roles, run_import, monkeypatch, dataset):
    bucket.put_samples(dataset)
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    with held_as(roles["ingest"], dataset):
        overlap = run_import(dataset, "--from-bucket", "--apply")
    assert overlap.code == 0 and "this is normal when runs overlap" in overlap.output


def test_the_history_capture_waits_a_bounded_time_and_names_the_holder(db, bucket, roles, run_import, monkeypatch):
    """Finding 4: a held history lock made every run fail naming no holder, and --capture-history wait forever."""
    bucket.put_samples("inc")
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    monkeypatch.setenv("FLEETTICKETS_LOCK_TIMEOUT", "1")
    with held_as(roles["reader"], "history") as stranger:
        pid = stranger.info.backend_pid
        run = run_import("inc", "--from-bucket", "--apply")
        alone = run_import("inc", "--capture-history", "--apply")
    for outcome in (run, alone):
        assert outcome.code == 1
        assert f"the history capture waited 1s for the history lock by pid {pid}" in outcome.err
    assert db.scalar("SELECT count(*) FROM tickets.inc") > 0, "the files were applied before the capture"
    assert run_import("inc", "--capture-history", "--apply").code == 0


def test_a_deploy_waiting_on_another_logins_lock_names_it(db, roles, monkeypatch, capsys):
    """Finding 4: the holder's start time is hidden from other roles, and naming it crashed the deploy."""
    from fleettickets import schema

    monkeypatch.setenv("FLEETTICKETS_MIGRATION_LOCK_WAIT", "1")
    reader = psycopg.conninfo.conninfo_to_dict(roles["reader"])["user"]
    monkeypatch.setenv("DATABASE_URL", roles["owner"])
    with held_as(roles["reader"], "migrations") as stranger:
        pid = stranger.info.backend_pid
        assert schema.main([]) == 1
    assert f"the migrations lock is still held after 1 s by pid {pid} (role {reader}" in capsys.readouterr().err
