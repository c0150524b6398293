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

# A link that drops packets, or a frozen server, answers nothing and closes nothing: without bounds of our own a
# run waits on its socket for ever and the server keeps its session, and the dataset's lock, for hours.
# - Our side: TCP keepalives and tcp_user_timeout (libpq) notice a dead peer while we wait or send, and no
#   request of a run's session may go unanswered longer than FLEETTICKETS_DATABASE_STALL_TIMEOUT.
# - The server's side: the same keepalives for its socket, and a run's session that says nothing for that long
#   (idle, or idle in a transaction) is ended, its locks with it.
# A URL that sets a libpq keepalive parameter itself keeps its own.
CLIENT_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
                     "keepalives_count": "3", "tcp_user_timeout": "60000"}
SERVER_KEEPALIVES = {"tcp_keepalives_idle": "60", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6",
                     "tcp_user_timeout": "60000"}
# Only where the server has them (idle_session_timeout: PostgreSQL 14 on).
BOUND_IDLE = """
SELECT pg_catalog.set_config(s.name, %s::text, false) FROM pg_catalog.pg_settings AS s
WHERE s.name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout')
"""

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
    # A login's LATIN1 or SQL_ASCII would make psycopg encode our text in it (or hand back bytes), and with
    # standard_conforming_strings off every backslash in a literal of ours would become an escape.
    "client_encoding": "UTF8",
    "standard_conforming_strings": "on",
    "timezone_abbreviations": "Default",
    "default_transaction_isolation": "read committed",
    "idle_in_transaction_session_timeout": f"{IDLE_IN_TRANSACTION_S * 1000}ms",
    **SERVER_KEEPALIVES,
}
SET_WORLD = "SELECT " + ", ".join(f"pg_catalog.set_config(%({name})s::text, %({name}_value)s::text, false)"
                                  for name in [*SESSION_WORLD, "statement_timeout", "lock_timeout"])
# Only a superuser may change these, so a login may carry them and we cannot pin them: refuse to run under them.
REPLICATION_ROLE = "SELECT pg_catalog.current_setting('session_replication_role'::text)"

WHAT_STAYS = "every file committed before stays applied, the rest is applied next run"



class StalledConnection(psycopg.Connection):
    """A connection on which no request waits longer than `stall_s` for the server's answer; past it the
    connection is closed and an OperationalError says so (lost_connection_ends_run makes it one line)."""

    stall_s: float | None = None

    def wait(self, gen, interval=0.1, timeout=None):  # type: ignore[no-untyped-def]
        try:
            return super().wait(gen, interval, timeout if timeout is not None else self.stall_s)
        except psycopg.errors._WaitTimeout:  # psycopg's own timeout of a wait: the answer never came
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.stall_s:g} s (FLEETTICKETS_DATABASE_STALL_TIMEOUT): "
                "the link or the server is stalled") from None


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
            keepalives = {name: value for name, value in CLIENT_KEEPALIVES.items()
                          if name not in psycopg.conninfo.conninfo_to_dict(url)}
            conn = StalledConnection.connect(psycopg.conninfo.make_conninfo(url, **keepalives), autocommit=True,
                                             connect_timeout=CONNECT_TIMEOUT_S, application_name="fleettickets")
            pin_world(conn, limits)
            conn.stall_s = limits.stall_s if limits else None
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
    if limits:
        conn.execute(BOUND_IDLE, (f"{round(limits.stall_s * 1000)}ms",))
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
