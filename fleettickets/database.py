"""Connections to PostgreSQL and what its errors mean for a run.

A database restarting for a minor upgrade is retried; a lost connection ends
the run with one line; an error the same bytes would meet again is the
file's (quarantine), any other is the moment's (retry next run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from fleettickets import clock, outward, settings
from fleettickets.errors import ConfigError, DatabaseUnavailable, RunAborted
from fleettickets.settings import RunLimits

# A database restarting for a minor upgrade is back within ~30 s; four tries
# spaced 1, 2, 4 s plus the connect timeouts cover that without hanging cron.
CONNECT_ATTEMPTS = 4
CONNECT_TIMEOUT_S = 5

# SQLSTATE classes of errors that the same bytes would meet again on every
# run: data exceptions (22), integrity violations (23), program limits such as
# an index row too large (54). Anything else (a lost connection, a deadlock, a
# timeout, a missing table) is about the moment or the setup, not the file.
DETERMINISTIC_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})

# Every session sets its own world before its first statement: a login's or a database's settings are a DBA's
# (or another tenant's) to choose, and ours must not read, parse or resolve differently under them.
# - search_path: pg_catalog alone (pg_temp is never searched for functions or operators), so no schema another
#   role controls, such as one named after our login ("$user"), can hold a function or operator our SQL finds;
#   our SQL names its tables by schema and PostGIS as public.*.
# - DateStyle, IntervalStyle, TimeZone: the forms psycopg parses and our SQL writes and compares.
# - transform_null_equals, timezone_abbreviations: what `= NULL` and 'EAT' mean in our SQL.
# - default_transaction_isolation: the read-committed semantics the ledger and the upsert are written for.
# - idle_in_transaction_session_timeout: a run that dies with a transaction open (a lost link, a frozen client)
#   lets go of its rows and locks on the server within minutes, not after TCP gives up (hours).
# The call is schema-qualified with exact types: it runs before the path is ours.
IDLE_IN_TRANSACTION_S = 600  # above any pause of ours inside a transaction (reading a file: at most 300 s)
SESSION_WORLD = {
    "search_path": "pg_catalog, pg_temp",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "transform_null_equals": "off",
    "timezone_abbreviations": "Default",
    "default_transaction_isolation": "read committed",
    "idle_in_transaction_session_timeout": f"{IDLE_IN_TRANSACTION_S * 1000}ms",
}
SET_WORLD = "SELECT " + ", ".join(f"pg_catalog.set_config(%({name})s::text, %({name}_value)s::text, false)"
                                  for name in [*SESSION_WORLD, "statement_timeout", "lock_timeout"])
# Only a superuser may change these, so a login may carry them and we cannot pin them: refuse to run under them.
REPLICATION_ROLE = "SELECT pg_catalog.current_setting('session_replication_role'::text)"

WHAT_STAYS = "every file committed before stays applied, the rest is applied next run"


def describe_error(error: BaseException) -> str:
    """psycopg's message on one line, without the connection string or any other secret."""
    return outward.line(" ".join(str(error).split()))


# lock_not_available and query_canceled: what lock_timeout and statement_timeout raise.
OUT_OF_TIME_SQLSTATES = frozenset({"55P03", "57014"})


def refused_by_data(error: psycopg.Error) -> bool:
    """Whether the database would refuse the same input again (rather than fail for the moment)."""
    return (error.sqlstate or "")[:2] in DETERMINISTIC_SQLSTATE_CLASSES


def out_of_time(error: psycopg.Error) -> bool:
    """Whether a statement hit statement_timeout or lock_timeout (a stuck session, a slow database)."""
    return error.sqlstate in OUT_OF_TIME_SQLSTATES


def connect(url: str | None = None, *, attempts: int | None = None,
            limits: RunLimits | None = None) -> psycopg.Connection:
    """Open an autocommit connection, retrying a database that is restarting.

    With `limits`, every statement of the session is bounded (statement_timeout) and so is every wait for a lock
    another session holds (lock_timeout): an ingest run never hangs on a stuck session.
    """
    url = url or settings.database_url()
    attempts = attempts or CONNECT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name="fleettickets")
            pin_world(conn, limits)
            return conn
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise DatabaseUnavailable(
                    f"cannot connect to the database after {attempts} attempts: {describe_error(error)}") from None
            clock.sleep(2 ** (attempt - 1))
        except psycopg.ProgrammingError:
            # psycopg quotes the offending part of the string, which may be part of the password.
            raise ConfigError("the database URL is not a valid connection string: check its form and "
                              "percent-encoding") from None
    raise AssertionError("unreachable")


def pin_world(conn: psycopg.Connection, limits: RunLimits | None = None) -> None:
    """Set the session's own settings (SESSION_WORLD), and its time limits; refuse a session whose triggers would
    not fire."""
    world: dict[str, str] = {}
    for name, value in SESSION_WORLD.items():
        world[name], world[f"{name}_value"] = name, value
    # 0 is the server's "no limit": a session without `limits` takes none from the login either.
    for name, seconds in (("statement_timeout", limits and limits.statement_timeout_s),
                          ("lock_timeout", limits and limits.lock_timeout_s)):
        world[name], world[f"{name}_value"] = name, f"{round((seconds or 0) * 1000)}ms"
    conn.execute(SET_WORLD, world)
    row = conn.execute(REPLICATION_ROLE).fetchone()
    if row and row[0] != "origin":
        conn.close()
        raise ConfigError(f"the database login runs with session_replication_role = {row[0]}: our triggers would "
                          "not fire (a ticket's point would not follow its coordinates). A superuser set it on the "
                          "login or the database: ALTER ROLE … RESET session_replication_role")


@contextmanager
def lost_connection_ends_run(conn: psycopg.Connection, action: str) -> Iterator[None]:
    """A lost connection becomes RunAborted, one line saying what stays; other database errors pass through."""
    try:
        yield
    except psycopg.OperationalError as error:
        if not (conn.broken or conn.closed):
            raise
        raise RunAborted(f"database connection lost while {action}: {describe_error(error)}; {WHAT_STAYS}"
                         ) from None
