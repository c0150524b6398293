"""Every advisory lock fleettickets takes, by name, and the one way to take one.

A lock key is two numbers: NAMESPACE, so fleettickets never collides with the
other apps sharing the database, and the lock's own number below. The SQL
side (tickets.capture_history() in migrations 10 and 15) takes the same
numbers; tests/test_locks.py checks every number written in a migration
against this registry.
"""

from __future__ import annotations

import psycopg

NAMESPACE = 0x464C5454  # "FLTT" = 1179407444

LOCKS = {
    "migrations": 0,
    "inc": 1,        # one ingest run of a dataset at a time
    "crq": 2,
    "geocode": 3,    # one geocoding run at a time: they share the gazetteer and the budget
    "history": 10,   # one history capture at a time
}


TRY_LOCK = "SELECT pg_try_advisory_lock(%s, %s)"
LOCK = "SELECT pg_advisory_lock(%s, %s)"
UNLOCK = "SELECT pg_advisory_unlock(%s, %s)"


def key(name: str) -> tuple[int, int]:
    """The two-number key of the lock `name`; KeyError for a lock not in the registry."""
    return NAMESPACE, LOCKS[name]


def try_lock(conn: psycopg.Connection, name: str) -> bool:
    """Take the session lock `name` if it is free; False when another session holds it."""
    row = conn.execute(TRY_LOCK, key(name)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, name: str) -> None:
    conn.execute(UNLOCK, key(name))


def lock(conn: psycopg.Connection, name: str) -> None:
    """Take the session lock `name`, waiting for it as long as it takes."""
    conn.execute(LOCK, key(name))
