"""Every advisory lock fleettickets takes, by name, and the one way to take one.

A lock key is two numbers: NAMESPACE, so fleettickets never collides with the
other apps sharing the database, and the lock's own number below. The SQL
side (migrations/read/30_tickets.capture_history.sql, resolve_ticket_geoms()) takes the same
numbers; tests/process/test_locks.py checks every number written in a migration
against this registry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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
BOUND_WAIT = "SELECT pg_catalog.set_config('lock_timeout', %s::text, true)"
# A two-number advisory lock shows in pg_locks as classid, objid and objsubid 2. Another role's session shows its
# pid, role and application name; its client, start and state only to its own role or pg_read_all_stats. Ours:
# our own role, or a member of the roles that run the ingest or deploy (a superuser is a member of every role).
HOLDER_COLUMNS = """
SELECT a.pid, a.usename::text, a.application_name, a.client_addr::text, a.backend_start, a.state,
       pg_catalog.now() - a.state_change,
       a.usesysid = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user)
       OR COALESCE((SELECT bool_or(pg_catalog.pg_has_role(a.usesysid, g.oid, 'MEMBER'))
                    FROM pg_catalog.pg_roles AS g
                    WHERE g.rolname IN ('fleettickets_owner', 'fleettickets_ingest')), false)
FROM pg_catalog.pg_locks AS l JOIN pg_catalog.pg_stat_activity AS a USING (pid)
"""
HOLDER = HOLDER_COLUMNS + """
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2
LIMIT 1
"""
RELATION_HOLDER = HOLDER_COLUMNS + """
WHERE l.locktype = 'relation' AND l.granted AND l.relation = %s::oid
  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
  AND l.pid <> pg_catalog.pg_backend_pid()
ORDER BY a.xact_start NULLS LAST
LIMIT 1
"""


@dataclass(frozen=True)
class Holder:
    """The session holding one of our locks, as much of it as the server shows us."""

    pid: int
    role: str
    application: str
    client: str | None
    since: dt.datetime | None
    state: str | None
    quiet: dt.timedelta | None
    """How long it has been in its state (its statement, or idle): shown for a session of our own role."""
    ours: bool
    """A session of our own role or of the owner or ingest roles: an overlapping run of ours, not a stranger."""

    def describe(self) -> str:
        known = [f"role {self.role}", f"application {self.application!r}" if self.application else "no application "
                 "name", f"from {self.client}" if self.client else None,
                 f"connected since {self.since:%Y-%m-%d %H:%M:%S %Z}" if self.since else None, self.state]
        return (f"pid {self.pid} ({', '.join(part for part in known if part)}); if it is stuck, a DBA can end it "
                f"with SELECT pg_terminate_backend({self.pid})")


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


def holder_of(conn: psycopg.Connection, name: str) -> Holder | None:
    """The session holding the lock `name`, or None once it has let it go."""
    # The classid and objid of a two-number key are the numbers as unsigned 32-bit oids.
    namespace, number = key(name)
    row = conn.execute(HOLDER, (namespace & 0xFFFFFFFF, number & 0xFFFFFFFF)).fetchone()
    return Holder(*row) if row else None


def holder(conn: psycopg.Connection, name: str) -> str:
    """Who holds the lock `name`, in words: pid, role, application and what else the server shows."""
    return _in_words(holder_of(conn, name))


def relation_holder(conn: psycopg.Connection, relation: int) -> str:
    """Who holds a lock on the table or view of oid `relation` (the longest in its transaction first), in words."""
    row = conn.execute(RELATION_HOLDER, (relation,)).fetchone()
    return _in_words(Holder(*row) if row else None)


def _in_words(found: Holder | None) -> str:
    return found.describe() if found else "a session that has since let it go"


TERMINATE = "SELECT pg_catalog.pg_terminate_backend(%s::integer)"


def end_dead_run(conn: psycopg.Connection, name: str, stall_s: float) -> Holder | None:
    """When a session of ours holding the lock `name` has stayed in one state for twice the stall bound, end it
    and return it; None when the holder is alive, a stranger, or gone. LockHeld when the server does not let us
    end it, saying who may.

    A live run never stays that long: it gives up on a silent database after `stall_s`, and the server ends an
    idle session of its then. Only a COPY whose client went silent stays "active" (the server does not cancel a
    statement that waits for its client's data) until TCP keepalives notice, if the link is truly gone."""
    found = holder_of(conn, name)
    if found is None or not found.ours or found.quiet is None or found.quiet <= dt.timedelta(seconds=2 * stall_s):
        return None
    try:
        with conn.transaction():
            conn.execute(TERMINATE, (found.pid,))
    except psycopg.errors.InsufficientPrivilege:
        raise LockHeld(f"the {name} lock is held by a run of ours that has said nothing for {_minutes(found.quiet)}: "
                       f"{found.describe()}") from None
    return found


def _minutes(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def held_by_stranger(conn: psycopg.Connection, name: str) -> Holder | None:
    """The holder of `name` when it is not a session of ours (another app's login took our key), else None."""
    found = holder_of(conn, name)
    return found if found is not None and not found.ours else None


def stranger_holds(name: str, found: Holder) -> str:
    """The one line a run says when a stranger holds its lock `name`: nothing is applied while it does."""
    return (f"the {name} lock is held by a session that is not a fleettickets run: {found.describe()}. Nothing is "
            "applied while it holds it; find out why that role takes our lock (docs/security.md, \"Locks\")")
