"""Apply migrations/NN_name.sql to DATABASE_URL in numeric order, each exactly once.

    python run_migrations.py            apply what is pending
    python run_migrations.py --status   list applied and pending files
    python run_migrations.py --roles    the least-privilege roles (once, by a DBA)

Each file runs in its own transaction together with the row recording it, so a
failed file leaves no trace and the ones before it stay applied. An advisory
lock serializes concurrent deploys.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

import cli
import database
import locks
import settings
from errors import FleetError
from report import Log

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FILENAME = re.compile(r"^(?P<number>\d{2,})_(?P<label>[a-z0-9_]+)\.sql$")

TRACKING_DDL = """
CREATE SCHEMA IF NOT EXISTS tickets;
CREATE TABLE IF NOT EXISTS tickets.schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
)
"""


class MigrationError(FleetError):
    """A migration file is missing, malformed, edited after being applied, or failed."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of `directory` in order; refuses bad names and duplicate numbers."""
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NN_lowercase_name.sql")
        number = int(match["number"])
        if number in found:
            raise MigrationError(f"{path.name}: number {number:02d} is already used by {found[number].name}")
        found[number] = Migration(number, path.name, path)
    return [found[n] for n in sorted(found)]


ROLES_DIR = MIGRATIONS_DIR / "roles"
CREATE_ROLES = ROLES_DIR / "create.sql"
GRANTS = ROLES_DIR / "grants.sql"
OWNER_IN_PLACE = """
SELECT EXISTS (SELECT FROM pg_namespace AS n JOIN pg_roles AS r ON r.oid = n.nspowner
               WHERE n.nspname = 'tickets' AND r.rolname = 'fleettickets_owner')
"""
AS_OWNER = "SET ROLE fleettickets_owner"
RESET_ROLE = "RESET ROLE"

TRACKING_EXISTS = "SELECT to_regclass('tickets.schema_migrations') IS NOT NULL"
APPLIED = "SELECT name, checksum FROM tickets.schema_migrations"
RECORD = "INSERT INTO tickets.schema_migrations (name, checksum, duration_ms) VALUES (%s, %s, %s)"


def applied_checksums(conn: psycopg.Connection) -> dict[str, str]:
    row = conn.execute(TRACKING_EXISTS).fetchone()
    if not (row and row[0]):
        return {}
    return dict(conn.execute(APPLIED).fetchall())


def pending(conn: psycopg.Connection, migrations: Sequence[Migration]) -> list[Migration]:
    """Migrations not yet applied; refuses if an applied file was edited."""
    applied = applied_checksums(conn)
    for migration in migrations:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{migration.name} was edited after it was applied (checksum differs): "
                "restore the file and put the change in a new migration"
            )
    return [m for m in migrations if m.name not in applied]


def migrate(conn: psycopg.Connection, migrations: Sequence[Migration],
            say: Callable[[str], None] = print) -> int:
    """Apply pending migrations; returns how many were applied.

    Once `--roles` has handed the schemas to fleettickets_owner, migrations run as that role (so what they create
    is the owner's) and the grants are applied again after them (so what they create is granted).
    """
    locks.lock(conn, "migrations", wait_s=settings.number("FLEETTICKETS_MIGRATION_LOCK_WAIT", float))
    as_owner = _owner_in_place(conn)
    try:
        if as_owner:
            _become_owner(conn)
        applied = _apply(conn, migrations, say)
        if as_owner:
            with conn.transaction():
                conn.execute(GRANTS.read_text(encoding="utf-8"))
        return applied
    finally:
        if as_owner:
            conn.execute(RESET_ROLE)
        locks.unlock(conn, "migrations")


def _apply(conn: psycopg.Connection, migrations: Sequence[Migration], say: Callable[[str], None]) -> int:
    todo = pending(conn, migrations)
    if not todo:
        say(f"Nothing to apply: all {len(migrations)} migrations are applied.")
        return 0
    for migration in todo:
        started = time.perf_counter()
        try:
            with conn.transaction():
                conn.execute(TRACKING_DDL)
                conn.execute(migration.sql)
                elapsed_ms = round((time.perf_counter() - started) * 1000)
                conn.execute(RECORD, (migration.name, migration.checksum, elapsed_ms))
        except psycopg.Error as error:
            raise MigrationError(
                f"{migration.name} failed and was rolled back: {database.describe_error(error)}"
            ) from None
        say(f"Applying {migration.name} … done in {elapsed_ms} ms")
    return len(todo)


def _owner_in_place(conn: psycopg.Connection) -> bool:
    row = conn.execute(OWNER_IN_PLACE).fetchone()
    return bool(row and row[0])


def _become_owner(conn: psycopg.Connection) -> None:
    try:
        conn.execute(AS_OWNER)
    except psycopg.errors.InsufficientPrivilege:
        raise MigrationError("the schemas belong to fleettickets_owner: run the migrations as a member of it "
                             "(CREATE ROLE … LOGIN IN ROLE fleettickets_owner; see docs/deployment-and-operations.md)"
                             ) from None


def apply_roles(conn: psycopg.Connection, say: Callable[[str], None] = print) -> None:
    """--roles: the group roles, the schemas handed to fleettickets_owner, the grants; safe to run again."""
    try:
        with conn.transaction():
            conn.execute(CREATE_ROLES.read_text(encoding="utf-8"))
            conn.execute(GRANTS.read_text(encoding="utf-8"))
    except psycopg.Error as error:
        raise MigrationError(f"--roles failed and was rolled back (it needs a role with CREATEROLE that owns the "
                             f"schemas, or a superuser): {database.describe_error(error)}") from None
    say("Roles fleettickets_owner, fleettickets_ingest, fleettickets_reader in place; tickets and reporting owned "
        "by fleettickets_owner; grants applied.")


def print_status(conn: psycopg.Connection, migrations: Sequence[Migration]) -> None:
    applied = applied_checksums(conn)
    for migration in migrations:
        state = "applied" if migration.name in applied else "pending"
        print(f"{state:8} {migration.name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_migrations.py", description=__doc__.splitlines()[0])
    parser.add_argument("--status", action="store_true", help="list applied and pending migrations, change nothing")
    parser.add_argument("--roles", action="store_true",
                        help="create the group roles fleettickets_owner/_ingest/_reader (NOLOGIN), hand the schemas "
                             "to fleettickets_owner and apply the grants; run once by a DBA, safe to repeat")
    parser.add_argument("--dir", type=Path, default=MIGRATIONS_DIR, help="migrations folder (default: %(default)s)")
    args = parser.parse_args(argv)
    log = Log("run_migrations")
    cli.quiet_libraries()
    try:
        migrations = discover(args.dir)
        with database.connect() as conn:
            if args.status:
                print_status(conn, migrations)
            elif args.roles:
                apply_roles(conn)
            else:
                migrate(conn, migrations)
        return 0
    except FleetError as error:
        log.error(str(error))
    except psycopg.Error as error:
        log.error(f"database: {database.describe_error(error)}")
    except KeyboardInterrupt:
        log.error("interrupted; every migration applied so far stays applied")
        return cli.EXIT_INTERRUPTED
    except Exception as error:  # the last resort: one redacted line, never a raw traceback
        cli.last_resort(log, error)
    return cli.EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
