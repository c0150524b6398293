"""Every advisory lock fleettickets takes, by name, and the one way to take one.

A lock key is two numbers: NAMESPACE, so fleettickets never collides with the
other apps sharing the database, and the lock's own number below. The SQL
side (migrations/read/30_tickets.capture_history.sql, resolve_ticket_geoms()) takes the same
numbers; tests/test_locks.py checks every number written in a migration
against this registry.
"""

from __future__ import annotations

import psycopg

from fleettickets.errors import FleetError


class LockHeld(FleetError):
    """Another session holds a lock for longer than this one may wait."""

NAMESPACE = 0x464C5454  # "FLTT" = 1179407444

LOCKS = {
    "migrations": 0,
    "inc": 1,        # one ingest run of a dataset at a time
    "crq": 2,
    "geocode": 3,    # one geocoding run at a time: they share the gazetteer and the budget
    "history": 10,   # one history capture at a time
}


TRY_LOCK = "SELECT pg_catalog.pg_try_advisory_lock(%s::integer, %s::integer)"
LOCK = "SELECT pg_catalog.pg_advisory_lock(%s::integer, %s::integer)"
UNLOCK = "SELECT pg_catalog.pg_advisory_unlock(%s::integer, %s::integer)"
BOUND_WAIT = "SELECT set_config('lock_timeout', %s, true)"
# A two-number advisory lock shows in pg_locks as classid, objid and objsubid 2.
HOLDER = """
SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start, a.state
FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2
LIMIT 1
"""


def key(name: str) -> tuple[int, int]:
    """The two-number key of the lock `name`; KeyError for a lock not in the registry."""
    return NAMESPACE, LOCKS[name]


def try_lock(conn: psycopg.Connection, name: str) -> bool:
    """Take the session lock `name` if it is free; False when another session holds it."""
    row = conn.execute(TRY_LOCK, key(name)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, name: str) -> None:
    conn.execute(UNLOCK, key(name))


def lock(conn: psycopg.Connection, name: str, *, wait_s: float) -> None:
    """Take the session lock `name`, waiting at most `wait_s`; LockHeld names the session holding it."""
    with conn.transaction():
        # SET LOCAL: the bound ends with this transaction; the session lock outlives it.
        conn.execute(BOUND_WAIT, (f"{round(wait_s * 1000)}ms",))
        try:
            with conn.transaction():
                conn.execute(LOCK, key(name))
        except psycopg.errors.LockNotAvailable:
            raise LockHeld(f"the {name} lock is still held after {wait_s:g} s by {holder(conn, name)}") from None


def holder(conn: psycopg.Connection, name: str) -> str:
    """Who holds the lock `name`, in words: pid, application, client, since when."""
    row = conn.execute(HOLDER, key(name)).fetchone()
    if row is None:
        return "a session that has since let it go"
    pid, application, client, since, state = row
    return (f"pid {pid} ({application or 'no application name'} from {client or 'a local socket'}, "
            f"connected since {since:%Y-%m-%d %H:%M:%S %Z}, {state}); if it is stuck, a DBA can end it with "
            f"SELECT pg_terminate_backend({pid})")
