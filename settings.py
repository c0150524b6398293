"""Configuration from the environment, database connections, and secret hygiene.

Every entrypoint reads its settings here, so a missing variable is reported the
same way everywhere and no secret can reach a log line: `redact()` is applied
to every message that leaves the process.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable

import psycopg
from psycopg.conninfo import conninfo_to_dict

SECRET_VARIABLES = ("RUSTFS_ACCESS_KEY", "RUSTFS_SECRET_KEY", "GEOCODER_API_KEY")

# Two-part advisory lock keys: this namespace plus a per-purpose number, so
# fleettickets never collides with the other apps sharing the database.
LOCK_NAMESPACE = 0x464C5454  # "FLTT"
MIGRATIONS_LOCK = 0

# A database restarting for a minor upgrade is back within ~30 s; four tries
# spaced 1, 2, 4 s plus the connect timeouts cover that without hanging cron.
CONNECT_ATTEMPTS = 4
CONNECT_TIMEOUT_S = 5


class FleetError(Exception):
    """An error the operator can act on; main() prints it as one line."""


class ConfigError(FleetError):
    """A required setting is missing or malformed."""


class DatabaseUnavailable(FleetError):
    """The database could not be reached or went away."""


def require(name: str, example: str) -> str:
    """Return the environment variable `name`, or explain how to set it."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing {name}: set it to {example}")
    return value


def positive_int(name: str, default: int, example: str) -> int:
    """The environment variable `name` as a whole number above zero, `default` when unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit() or int(text) == 0:
        raise ConfigError(f"{name} must be a whole number above zero, e.g. {example} (got {text[:40]!r})")
    return int(text)


def database_url() -> str:
    return require("DATABASE_URL", "the PostgreSQL URL, e.g. postgresql://fleettickets@db:5432/tracksolid_db")


def secrets() -> list[str]:
    """Every secret value this process could know about, longest first."""
    values = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    url = os.environ.get("DATABASE_URL", "")
    if url:
        values.append(url)
        with contextlib.suppress(psycopg.ProgrammingError):
            values.append(conninfo_to_dict(url).get("password") or "")
    return sorted((v for v in values if len(v) >= 3), key=len, reverse=True)


def redact(text: str, known: Iterable[str] | None = None) -> str:
    """Replace every secret value in `text` with '***'."""
    for secret in secrets() if known is None else known:
        text = text.replace(secret, "***")
    return text


def describe_db_error(error: BaseException) -> str:
    """psycopg's message on one line, without the connection string."""
    return redact(" ".join(str(error).split()))


def connect(url: str | None = None, *, attempts: int = CONNECT_ATTEMPTS,
            sleep: Callable[[float], None] = time.sleep) -> psycopg.Connection:
    """Open an autocommit connection, retrying a database that is restarting."""
    url = url or database_url()
    for attempt in range(1, attempts + 1):
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name="fleettickets")
        except psycopg.OperationalError as error:
            if attempt == attempts:
                raise DatabaseUnavailable(
                    f"cannot connect to the database after {attempts} attempts: {describe_db_error(error)}"
                ) from None
            sleep(2 ** (attempt - 1))
        except psycopg.ProgrammingError as error:
            raise ConfigError(f"DATABASE_URL is not a valid connection string: {describe_db_error(error)}") from None
    raise AssertionError("unreachable")
