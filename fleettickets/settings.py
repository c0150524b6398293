"""Configuration: every environment variable fleettickets reads, typed and validated in one place.

`VARIABLES` is the registry (the README's configuration table and
`.env.example` are tested against it); each concern reads its variables into a
frozen settings object with `from_env()`. `redact()` knows every secret the
registry marks; `outward` hides them in every line that leaves the process.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict

from fleettickets.errors import ConfigError


@dataclass(frozen=True)
class Variable:
    """One environment variable as the README documents it."""

    name: str
    meaning: str
    required: str = "no"
    """When it must be set: 'yes', or the action that needs it, e.g. 'with --from-bucket'."""
    default: str = ""
    example: str = ""
    """A valid value (never a real secret), for error messages."""
    secret: bool = False
    """Never printed: replaced by *** in every output."""
    in_env_example: bool = True


VARIABLES = (
    Variable("DATABASE_URL", "PostgreSQL URL, e.g. `postgresql://fleettickets@db:5432/tracksolid_db`", "yes",
             example="postgresql://fleettickets@db:5432/tracksolid_db", secret=True),
    Variable("MIGRATION_DATABASE_URL", "PostgreSQL URL that `run_migrations.py` connects with: once `--roles` has "
             "run, a login in `fleettickets_owner` (the app's `DATABASE_URL` is then an ingest login); unset, "
             "`DATABASE_URL`", "after `--roles`", example="postgresql://fleettickets_migrate@db:5432/tracksolid_db",
             secret=True, in_env_example=False),
    Variable("RUSTFS_ENDPOINT", "S3 endpoint URL (path-style addressing)", "with `--from-bucket`",
             example="https://s3.example.com"),
    Variable("RUSTFS_ACCESS_KEY", "S3 access key id", "with `--from-bucket`", secret=True),
    Variable("RUSTFS_SECRET_KEY", "S3 secret key", "with `--from-bucket`", secret=True),
    Variable("RUSTFS_BUCKET", "bucket name", default="isptickets"),
    Variable("RUSTFS_REGION", "region", default="us-east-1"),
    Variable("GEOCODER_API_KEY", "LocationIQ API key (geocoding only; the ingest never needs it)",
             "with `--geocode-*` and `--apply`", secret=True),
    Variable("GEOCODER_URL", "any Nominatim-compatible `/search` endpoint",
             default="https://us1.locationiq.com/v1/search"),
    Variable("GEOCODER_DAILY_BUDGET", "requests per provider day, retries included (the free plan allows 5,000)",
             default="4500"),
    Variable("GEOCODER_RPS", "requests per second (the free plan allows 2/s but only 60/min)", default="1"),
    Variable("GEOCODER_TIMEOUT", "seconds to wait for one geocoder answer", default="10", in_env_example=False),
    Variable("GEOCODER_MAX_FAILURES", "timeouts, failed connections or 5xx answers in a row after which a geocoding "
             "run stops asking and exits 1", default="3", in_env_example=False),
    Variable("AWS_MAX_ATTEMPTS", "attempts botocore makes per S3 request before the run gives up on the bucket",
             default="5", in_env_example=False),
    Variable("FLEETTICKETS_MAX_OBJECT_BYTES",
             "a change file larger than this (by the listing's size) is rejected without being read",
             default="536870912"),
    Variable("FLEETTICKETS_BATCH_FILES", "waiting change files applied together in one transaction, each ticket "
             "written once", default="50", in_env_example=False),
    Variable("FLEETTICKETS_BATCH_BYTES", "a batch takes no further file once its files add up to this many bytes",
             default="134217728", in_env_example=False),
    Variable("FLEETTICKETS_RUN_TIMEOUT", "seconds after which an ingest run starts no new file (the rest wait for "
             "the next run); well under the 20-minute schedule", default="900"),
    Variable("FLEETTICKETS_OBJECT_TIMEOUT", "seconds one change file may take to read from the bucket before it is "
             "left for the next run", default="300"),
    Variable("FLEETTICKETS_STATEMENT_TIMEOUT", "seconds one SQL statement of an ingest run may take", default="300"),
    Variable("FLEETTICKETS_DATABASE_STALL_TIMEOUT", "seconds a run waits for the database to answer one request "
             "before it takes the link for dead and ends; the server ends a run's session silent this long, and "
             "its locks with it; keep it above FLEETTICKETS_STATEMENT_TIMEOUT and FLEETTICKETS_OBJECT_TIMEOUT (a run "
             "that starts otherwise says so)",
             default="360"),
    Variable("FLEETTICKETS_LOCK_TIMEOUT", "seconds an ingest run waits for a row or table lock another session holds",
             default="30"),
    Variable("FLEETTICKETS_MIGRATION_LOCK_WAIT", "seconds `run_migrations.py` waits for another deploy's migrations "
             "before it gives up naming the holder", default="300", in_env_example=False),
    Variable("FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT", "seconds a deploy waits for a table, view or function that a "
             "running query holds (new queries of it queue behind the deploy meanwhile) before it rolls back",
             default="10", in_env_example=False),
    Variable("FLEETTICKETS_LOCK_DIR", "`run_ingest.sh` only: the directory of its lock, owned by the user running it "
             "and writable by nobody else; unset, `$XDG_RUNTIME_DIR/fleettickets`, else `~/.cache/fleettickets`",
             in_env_example=False),
    Variable("FLEETTICKETS_DEBUG", "`1` adds a (redacted) traceback to an unexpected error", in_env_example=False),
    Variable("FLEETTICKETS_FAULT", "crash-test hook: names a step at which the process kills itself (tests only)",
             "never in production", in_env_example=False),
)
BY_NAME = {variable.name: variable for variable in VARIABLES}


# -- reading and validating ------------------------------------------------------------------------------------

def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def text(name: str) -> str:
    """The variable's value, or its documented default when unset."""
    return _raw(name) or BY_NAME[name].default


def required(name: str) -> str:
    """The variable's value; a ConfigError naming what to set when it is missing."""
    value = _raw(name)
    if not value:
        variable = BY_NAME[name]
        example = f", e.g. {variable.example}" if variable.example else ""
        raise ConfigError(f"missing {name}: set it to the {variable.meaning.split(',')[0]}{example}")
    return value


def number(name: str, kind: type[int] | type[float] = int) -> float:
    """The variable as a finite number above zero (a whole one for int), or its default."""
    value = text(name)
    try:
        parsed = kind(value)
    except ValueError:
        parsed = math.nan
    if not (math.isfinite(parsed) and parsed > 0):
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what} above zero, e.g. {name}={BY_NAME[name].default} "
                          f"(got {value[:40]!r})")
    return parsed


def url(name: str, *, need: bool = True) -> str:
    """The variable as an http(s) URL; the value itself is never echoed (it may hold credentials)."""
    value = required(name) if need else text(name)
    if _ambiguous_at(value):
        raise ConfigError(f"{name} has an '@' that is not the one before the host: an '@' or a '/' in the user "
                          "name or password would make part of them read (and printed) as a host or a path. Write "
                          "each @ in them as %40 and each / as %2F")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = BY_NAME[name].example or BY_NAME[name].default
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host, e.g. {example}")
    return value


# -- one frozen settings object per concern -------------------------------------------------------------------

@dataclass(frozen=True)
class BucketSettings:
    endpoint: str
    """S3 endpoint URL; path-style addressing."""
    access_key: str
    secret_key: str
    name: str
    region: str
    max_attempts: int
    """Attempts botocore makes per request (its own retries and backoff)."""
    object_timeout_s: float
    """The longest one object may take to read, however its bytes trickle in."""

    @classmethod
    def from_env(cls) -> BucketSettings:
        return cls(endpoint=url("RUSTFS_ENDPOINT"), access_key=required("RUSTFS_ACCESS_KEY"),
                   secret_key=required("RUSTFS_SECRET_KEY"), name=text("RUSTFS_BUCKET"),
                   region=text("RUSTFS_REGION"), max_attempts=int(number("AWS_MAX_ATTEMPTS")),
                   object_timeout_s=number("FLEETTICKETS_OBJECT_TIMEOUT", float))


@dataclass(frozen=True)
class GeocoderSettings:
    url: str
    """A Nominatim-compatible /search endpoint."""
    api_key: str
    """Empty in a dry run, which asks nothing."""
    daily_budget: int
    """Requests per provider day (00:00 UTC), retries included, shared by every run."""
    rps: float
    timeout_s: float
    """Seconds to wait for one answer."""
    max_failures: int
    """Transport failures or 5xx answers in a row after which the provider counts as down."""

    @classmethod
    def from_env(cls, *, need_key: bool) -> GeocoderSettings:
        return cls(url=url("GEOCODER_URL", need=False),
                   api_key=required("GEOCODER_API_KEY") if need_key else _raw("GEOCODER_API_KEY"),
                   daily_budget=int(number("GEOCODER_DAILY_BUDGET")), rps=number("GEOCODER_RPS", float),
                   timeout_s=number("GEOCODER_TIMEOUT", float), max_failures=int(number("GEOCODER_MAX_FAILURES")))

    @property
    def provider(self) -> str:
        """The provider's host and port (never credentials in the URL): the budget is counted per provider."""
        return urlsplit(self.url).netloc.rpartition("@")[2]


@dataclass(frozen=True)
class RunLimits:
    """The bounds that keep an unattended ingest run from hanging or holding its lock for long."""

    max_object_bytes: int
    """A change file larger than this is rejected from the listing, unread."""
    batch_files: int
    """Waiting files applied in one transaction (1: each file alone)."""
    batch_bytes: int
    """A batch takes no further file once its files' sizes add up to this."""
    run_timeout_s: float
    """After this long a run starts no new file; the rest are applied next run."""
    statement_timeout_s: float
    lock_timeout_s: float
    stall_s: float
    """No request waits longer for the database's answer; the server ends a session of the run silent this long."""

    def stall_warnings(self, object_timeout_s: float | None = None) -> list[str]:
        """What is wrong with the stall bound beside the bounds it must stay above (None for a run without the
        bucket): not fatal, but a long and healthy statement or read would end the run as a stalled link."""
        below = [(name, seconds) for name, seconds in (("FLEETTICKETS_STATEMENT_TIMEOUT", self.statement_timeout_s),
                                                       ("FLEETTICKETS_OBJECT_TIMEOUT", object_timeout_s))
                 if seconds is not None and self.stall_s <= seconds]
        return [f"FLEETTICKETS_DATABASE_STALL_TIMEOUT ({self.stall_s:g} s) is not above {name} ({seconds:g} s): a "
                f"healthy wait longer than {self.stall_s:g} s will end the run as a stalled database link; set it "
                "above both" for name, seconds in below]

    @classmethod
    def from_env(cls) -> RunLimits:
        return cls(max_object_bytes=int(number("FLEETTICKETS_MAX_OBJECT_BYTES")),
                   batch_files=int(number("FLEETTICKETS_BATCH_FILES")),
                   batch_bytes=int(number("FLEETTICKETS_BATCH_BYTES")),
                   run_timeout_s=number("FLEETTICKETS_RUN_TIMEOUT", float),
                   statement_timeout_s=number("FLEETTICKETS_STATEMENT_TIMEOUT", float),
                   lock_timeout_s=number("FLEETTICKETS_LOCK_TIMEOUT", float),
                   stall_s=number("FLEETTICKETS_DATABASE_STALL_TIMEOUT", float))


def database_url(name: str = "DATABASE_URL") -> str:
    """DATABASE_URL (or MIGRATION_DATABASE_URL), checked to parse as the user meant: a malformed one is named
    without echoing any of it."""
    value = required(name)
    if _ambiguous_at(value):
        raise ConfigError(f"{name} has an '@' that is not the one before the host: libpq would take part of "
                          "the password for the host name. Write each @ in the user name or password as %40 "
                          "(and each / as %2F)")
    try:
        conninfo_to_dict(value)
    except Exception:
        raise ConfigError(f"{name} is not a valid connection string: check its form "
                          "(postgresql://user:password@host:5432/dbname) and percent-encoding (a % in the password "
                          "is written %25, an @ %40, a / %2F)") from None
    return value


def _ambiguous_at(value: str) -> bool:
    """Whether a URL holds an '@' besides the single one that ends its user and password.

    libpq ends the userinfo at the first '@' before any '/', urllib (botocore, httpx) at the last '@' before any
    '/': a second raw '@' (from the password) lands in the host name, and a raw '/' in the password hides the '@'
    altogether; either way a piece of the password would be printed as a host, a port, a path or a database. The
    query string (`?sslmode=…`) may hold what it likes, and so may an http URL's fragment.
    """
    if not SCHEME.match(value):
        return False
    query = r"[?]" if value.startswith(("postgresql://", "postgres://")) else r"[?#]"
    before_query = re.split(query, value.split("://", 1)[1], maxsplit=1)[0]
    authority = before_query.split("/", 1)[0]
    return before_query.count("@") > (1 if "@" in authority else 0)


def migration_database_url() -> str:
    """The URL the migration runner connects with: MIGRATION_DATABASE_URL when set, else DATABASE_URL."""
    return database_url("MIGRATION_DATABASE_URL" if _raw("MIGRATION_DATABASE_URL") else "DATABASE_URL")


def debug() -> bool:
    return _raw("FLEETTICKETS_DEBUG") == "1"


# -- secrets ---------------------------------------------------------------------------------------------------

DATABASE_URLS = ("DATABASE_URL", "MIGRATION_DATABASE_URL")
URLS_WITH_CREDENTIALS = (*DATABASE_URLS, "RUSTFS_ENDPOINT", "GEOCODER_URL")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def secrets() -> list[str]:
    """Every secret value this process could know about, longest first (`outward` hides them in every output)."""
    values = [_raw(variable.name) for variable in VARIABLES if variable.secret]
    for name in URLS_WITH_CREDENTIALS:
        values += _userinfo_readings(_raw(name))
    for database in filter(None, map(_raw, DATABASE_URLS)):
        with contextlib.suppress(Exception):  # an unparseable URL is still hidden whole, and its userinfo
            values.append(str(conninfo_to_dict(database).get("password") or ""))
    return sorted({value for value in values if len(value) >= 3}, key=len, reverse=True)


def _userinfo_readings(value: str) -> list[str]:
    """user:password as every parser in the process might cut it, found without parsing the URL: libpq ends
    the userinfo at the first '@' before any '/', urllib (httpx, botocore) at the last '@' before any '/?#'."""
    scheme = SCHEME.match(value)
    if not scheme:
        return []
    rest = value[scheme.end():]
    readings = []
    # And as a person meant it: up to the last '@' before any '?#', a '/' in the password included.
    for authority in (re.split(r"[/?#]", rest, maxsplit=1)[0], rest.split("/", 1)[0],
                      re.split(r"[?#]", rest, maxsplit=1)[0]):
        for userinfo in (authority.partition("@")[0], authority.rpartition("@")[0]):
            if userinfo and "@" in authority:
                password = userinfo.partition(":")[2]
                readings += [userinfo, password, unquote(password)]
    return readings


def configuration_table() -> str:
    """The README's configuration table as this registry says it must read; `python -m fleettickets.settings`
    prints it."""
    lines = ["| variable | required | default | meaning |", "|---|---|---|---|"]
    for variable in VARIABLES:
        default = f"`{variable.default}`" if variable.default else ""
        row = f"| `{variable.name}` | {variable.required} | {default} | {variable.meaning} |"
        lines.append(row.replace("|  |", "| |"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--names"]:  # what run_ingest.sh lets its env file set
        print(" ".join(BY_NAME))
    else:
        print(configuration_table(), end="")
