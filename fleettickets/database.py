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

SESSION_LIMITS = "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)"

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
            if limits is not None:
                conn.execute(SESSION_LIMITS, (f"{round(limits.statement_timeout_s * 1000)}ms",
                                              f"{round(limits.lock_timeout_s * 1000)}ms"))
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
