"""Every advisory lock is named once, in locks.py; the SQL side takes the same numbers."""

from __future__ import annotations

import re
from pathlib import Path

from fleettickets import locks

ROOT = Path(__file__).resolve().parents[1]
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
