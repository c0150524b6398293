"""Bring a database to this tree's schema: the versioned migrations once each, then the read layer.

    python run_migrations.py            apply what is pending
    python run_migrations.py --status   list applied and pending files, and whether the read layer is current
    python run_migrations.py --roles    the least-privilege roles (once, by a DBA)
    python run_migrations.py --baseline adopt a database the original system built (fleettickets/baseline.py)

migrations/NN_name.sql are history: tables, columns, indexes, data moves,
DROPs, and the functions something stored depends on. Each is applied once
and never edited; an edited one is refused. migrations/read/NN_schema.object.sql
are the read layer: the one current definition of every view and of every
function nothing stored depends on, edited in place (migrations/read/README.md).

A deploy is one transaction: the pending versioned files in order, then the
whole read layer in file order whenever a versioned file was pending or the
read files differ from those last applied, then the grants. A failure leaves
the database as it was. An advisory lock serializes deploys, and a bounded
lock wait keeps a deploy from queueing the map's queries behind it for long.
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
from psycopg import sql

from fleettickets import baseline, database, edge, locks, outward, roles, settings
from fleettickets.errors import FleetError
from fleettickets.log import Log

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
READ_LAYER = "read"
VERSIONED_NAME = re.compile(r"^(?P<number>\d{2,})_(?P<label>[a-z0-9_]+)\.sql$")
READ_NAME = re.compile(r"^(?P<number>\d{2,})_(?P<object>(?:tickets|reporting)\.[a-z0-9_]+)\.sql$")
DEFINES = re.compile(r"^CREATE OR REPLACE (FUNCTION|VIEW) ((?:tickets|reporting)\.[a-z0-9_]+)", re.M | re.I)

TRACKING_DDL = """
CREATE SCHEMA IF NOT EXISTS tickets;
CREATE TABLE IF NOT EXISTS tickets.schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets.schema_read_layer (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(FleetError):
    """A migration file is missing, malformed, edited after being applied, or failed."""


@dataclass(frozen=True)
class SqlFile:
    number: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def defines(self) -> frozenset[str]:
        """The views and functions the file creates or replaces, by qualified name."""
        return frozenset(name for _kind, name in DEFINES.findall(self.sql))

    @property
    def replaces_a_view(self) -> bool:
        return any(kind.upper() == "VIEW" for kind, _name in DEFINES.findall(self.sql))

    def uses(self, objects: frozenset[str]) -> bool:
        """Whether the file names any of `objects` (read files name everything by schema)."""
        return any(re.search(rf"\b{re.escape(name)}\b", self.sql, re.IGNORECASE) for name in objects)


@dataclass(frozen=True)
class Tree:
    """A migrations folder: the versioned files and the read layer, each in the order they are applied."""

    versioned: list[SqlFile]
    read: list[SqlFile]
    directory: Path = MIGRATIONS_DIR


def read_object(name: str) -> str:
    """The object a read file defines, from its name: '51_reporting.fn_inc_dashboard.sql' defines
    'reporting.fn_inc_dashboard'."""
    match = READ_NAME.match(name)
    return match["object"] if match else name


def discover(directory: Path = MIGRATIONS_DIR) -> Tree:
    """The files of `directory` and its read/ folder in order; refuses bad names and duplicate numbers."""
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    read_directory = directory / READ_LAYER
    if not read_directory.is_dir():
        raise MigrationError(f"read layer folder {read_directory} does not exist")
    return Tree(_numbered(directory, VERSIONED_NAME, "NN_lowercase_name.sql"),
                _numbered(read_directory, READ_NAME, "NN_tickets.object.sql or NN_reporting.object.sql"),
                directory)


def _numbered(directory: Path, pattern: re.Pattern[str], form: str) -> list[SqlFile]:
    found: dict[int, SqlFile] = {}
    for path in sorted(directory.glob("*.sql")):
        match = pattern.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: files in {directory.name}/ are named {form}")
        number = int(match["number"])
        if number in found:
            raise MigrationError(f"{path.name}: number {number:02d} is already used by {found[number].name}")
        found[number] = SqlFile(number, path.name, path)
    return [found[n] for n in sorted(found)]


BOUND_OBJECT_WAIT = "SELECT set_config('lock_timeout', %s, true)"
# Versioned files up to this one were written for the path they first ran with ("$user", public): they name
# PostGIS unqualified and create the extension in the current schema. They run with public alone (pg_catalog is
# then searched first, as it was then), and only while public holds nothing another role made that their calls
# could find instead of the built-ins they mean (PLANTED_IN_PUBLIC). Later files run under the session's pinned
# path (database.SESSION_WORLD) and name everything by schema.
LAST_PUBLIC_PATH_MIGRATION = 21
PUBLIC_PATH = "SELECT pg_catalog.set_config('search_path', 'public', true)"
CALLED = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)
PLANTED_IN_PUBLIC = """
SELECT planted.kind || ' ' || planted.signature || ' (owner ' || pg_catalog.quote_ident(r.rolname) || ')'
FROM (SELECT 'function' AS kind, p.oid::regprocedure::text AS signature, p.proname::text AS name,
             p.proowner AS owner, p.oid, 'pg_catalog.pg_proc'::regclass AS catalog
      FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      WHERE n.nspname = 'public'
      UNION ALL
      SELECT 'operator', o.oid::regoperator::text, o.oprname::text, o.oprowner, o.oid,
             'pg_catalog.pg_operator'::regclass
      FROM pg_catalog.pg_operator AS o JOIN pg_catalog.pg_namespace AS n ON n.oid = o.oprnamespace
      WHERE n.nspname = 'public') AS planted
JOIN pg_catalog.pg_roles AS r ON r.oid = planted.owner
WHERE NOT r.rolsuper AND r.rolname NOT IN ('fleettickets_owner', session_user)
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend AS d
                  WHERE d.classid = planted.catalog AND d.objid = planted.oid AND d.deptype = 'e')
  AND (planted.kind = 'operator' OR planted.name = ANY (%(called)s::text[]))
ORDER BY 1
"""
# Views bind the functions they call when they are created, and SQL function bodies are checked against what
# the path finds: the read layer sees pg_catalog alone, so nothing another role put in public is bound into it
# (it names PostGIS as public.*). The rest of the deploy's transaction keeps this path.
TRUSTED_PATH_ONLY = "SELECT set_config('search_path', 'pg_catalog, pg_temp', true)"

TRACKED = """
SELECT to_regclass('tickets.schema_migrations') IS NOT NULL, to_regclass('tickets.schema_read_layer') IS NOT NULL
"""
TRACKING_COLUMNS = """
SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
WHERE a.attrelid = 'tickets.schema_migrations'::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""
OUR_TRACKING_COLUMNS = frozenset({"name", "checksum", "applied_at", "duration_ms"})
APPLIED = "SELECT name, checksum FROM tickets.schema_migrations"
RECORD = "INSERT INTO tickets.schema_migrations (name, checksum, duration_ms) VALUES (%s, %s, %s)"
READ_APPLIED = "SELECT name, checksum FROM tickets.schema_read_layer"
READ_FORGET = "DELETE FROM tickets.schema_read_layer"
READ_OBJECTS_PRESENT = """
SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname IN ('tickets', 'reporting') AND c.relkind IN ('v', 'm')
UNION
SELECT n.nspname || '.' || p.proname FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname IN ('tickets', 'reporting')
"""
# What a deploy that replaces a view or runs versioned files locks before it changes anything: every table and view
# of ours (another team's relation in our schemas is neither ours to lock nor changed by a deploy), tables first.
RELATIONS_TO_LOCK = """
SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, pg_catalog.pg_get_userbyid(c.relowner)::text
FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname IN ('tickets', 'reporting') AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
  AND c.relkind IN ('r', 'p', 'f', 'v', 'm')
ORDER BY c.relkind IN ('v', 'm'), 2, 3
"""
# Read first by every reporting function and the history capture, locked first by a deploy (migration 23).
READ_GATE = "tickets.read_gate"
# LOCK on a view also locks every relation under it, in the same mode; the tables are taken first, so the only
# lock a view's LOCK can miss is its own.
LOCK_NOW = sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT")
# Waiting for one relation alone, holding none of the others: a LOCK on a view would wait for the tables under it
# one by one while holding it. An ALTER … OWNER TO the owner it has changes nothing and takes the lock a CREATE OR
# REPLACE takes, on that relation alone.
WAIT_FOR_ALONE = {kind: sql.SQL(f"ALTER {keyword} {{}} OWNER TO {{}}") for kind, keyword in
                  (("r", "TABLE"), ("p", "TABLE"), ("f", "FOREIGN TABLE"), ("v", "VIEW"), ("m", "MATERIALIZED VIEW"))}
READ_RECORD = "INSERT INTO tickets.schema_read_layer (name, checksum) VALUES (%s, %s)"


def _tracking(conn: psycopg.Connection) -> tuple[bool, bool]:
    row = conn.execute(TRACKED).fetchone()
    versioned, read = (bool(row[0]), bool(row[1])) if row else (False, False)
    if versioned:
        columns = {name for (name,) in conn.execute(TRACKING_COLUMNS).fetchall()}
        if not columns >= OUR_TRACKING_COLUMNS:
            # Taken for ours, it would be read wrongly or refused at every turn, and --baseline would say the
            # database is already deployed: the operator went in a circle.
            raise MigrationError(
                f"tickets.schema_migrations is not this runner's (its columns: {', '.join(sorted(columns))}; ours: "
                f"{', '.join(sorted(OUR_TRACKING_COLUMNS))}): the original system's runner kept its own there. "
                "Rename it (ALTER TABLE tickets.schema_migrations RENAME TO original_schema_migrations), then "
                "adopt the database with python run_migrations.py --baseline; nothing was changed")
    return versioned, read


def applied_checksums(conn: psycopg.Connection) -> dict[str, str]:
    versioned, _read = _tracking(conn)
    return dict(conn.execute(APPLIED).fetchall()) if versioned else {}


def pending(conn: psycopg.Connection, migrations: Sequence[SqlFile]) -> list[SqlFile]:
    """Versioned files not yet applied; refuses if an applied file was edited."""
    applied = applied_checksums(conn)
    for migration in migrations:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"{migration.name} was edited after it was applied (checksum differs): "
                "restore the file and put the change in a new migration"
            )
    return [m for m in migrations if m.name not in applied]


@dataclass(frozen=True)
class ReadLayerState:
    """How the read files differ from those the database last applied."""

    files: int
    new: tuple[str, ...]
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    """Files applied as they are whose object is no longer in the database (a hand's DROP, a versioned CASCADE)."""
    gone: tuple[str, ...]
    """Objects whose file was removed: they stay in the database (only a versioned DROP removes one)."""

    @property
    def current(self) -> bool:
        return not (self.new or self.changed or self.missing or self.gone)

    @property
    def never_applied(self) -> bool:
        return bool(self.files) and len(self.new) == self.files

    def describe(self) -> str:
        if self.never_applied:
            return "not applied to this database before"
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("changed", self.changed), ("new", self.new), ("missing from the database", self.missing),
                  ("file removed", self.gone)) if names]
        return "; ".join(parts)

    def to_apply(self, read_files: Sequence[SqlFile], *, versioned_pending: bool) -> list[SqlFile]:
        """The files a deploy re-applies: the whole layer with versioned files (what they alter is not known
        beforehand) or on a first deploy; else those changed, new or missing, and every later file that names
        what one of them defines (a view's `t.*` is expanded when it is created)."""
        if versioned_pending or self.never_applied:
            return list(read_files)
        touched = {*self.new, *self.changed, *self.missing}
        chosen: list[SqlFile] = []
        redefined: frozenset[str] = frozenset()
        for read_file in read_files:
            if read_file.name in touched or read_file.uses(redefined):
                chosen.append(read_file)
                redefined |= read_file.defines
        return chosen


def read_layer_state(conn: psycopg.Connection, read_files: Sequence[SqlFile]) -> ReadLayerState:
    _versioned, tracked = _tracking(conn)
    recorded: dict[str, str] = dict(conn.execute(READ_APPLIED).fetchall()) if tracked else {}
    present = {name for (name,) in conn.execute(READ_OBJECTS_PRESENT).fetchall()}
    current = {f.name: f.checksum for f in read_files}
    defined = {read_object(name) for name in current}
    # Renumbering a file (to reorder the layer) is a new name for the same object, not a removal.
    return ReadLayerState(
        files=len(current),
        new=tuple(name for name in current if name not in recorded),
        changed=tuple(name for name in current if name in recorded and recorded[name] != current[name]),
        missing=tuple(f.name for f in read_files if recorded.get(f.name) == f.checksum
                      and not f.defines <= present),
        gone=tuple(sorted({read_object(name) for name in recorded} - defined)))


def migrate(conn: psycopg.Connection, tree: Tree, say: Callable[[str], None] = print, *,
            adopt: bool = False) -> int:
    """Apply the pending versioned files and, when needed, the read layer, in one transaction.

    Returns how many versioned files were applied. Once `--roles` has handed the schemas to
    fleettickets_owner, the deploy runs as that role (so what it creates is the owner's) and ends by applying
    the grants (so what it creates is granted). With `adopt` (--baseline), a database the original system built
    first has its 01–13 compared and recorded as baselined (fleettickets/baseline.py), in the same transaction.
    """
    locks.lock(conn, "migrations", wait_s=settings.number("FLEETTICKETS_MIGRATION_LOCK_WAIT", float))
    object_wait_s = settings.number("FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT", float)
    try:
        as_owner = roles.owner_in_place(conn)
        with conn.transaction():
            conn.execute(BOUND_OBJECT_WAIT, (f"{round(object_wait_s * 1000)}ms",))
            if as_owner:
                roles.become_owner(conn)
            _check_adoption(conn, adopt)
            adoption = baseline.examine(conn, tree.directory, [(m.name, m.checksum) for m in tree.versioned],
                                        say) if adopt else None
            versioned_pending = bool(pending(conn, tree.versioned))
            layer = read_layer_state(conn, tree.read)
            reapply = layer.to_apply(tree.read, versioned_pending=versioned_pending)
            if versioned_pending or any(f.replaces_a_view for f in reapply):
                _lock_up_front(conn, object_wait_s)
            conn.execute(TRACKING_DDL)
            if adoption:
                baseline.record(conn, adoption, say)
            todo = pending(conn, tree.versioned)
            refusal = deploy_refusal(conn, todo)
            if refusal:
                raise MigrationError(refusal)
            for migration in todo:
                if migration.number <= LAST_PUBLIC_PATH_MIGRATION:
                    conn.execute(PUBLIC_PATH)
                elapsed_ms = _run_file(conn, migration, migration.name, object_wait_s)
                conn.execute(TRUSTED_PATH_ONLY)
                conn.execute(RECORD, (migration.name, migration.checksum, elapsed_ms))
                say(f"Applying {migration.name} … done in {elapsed_ms} ms")
            if todo or not layer.current:
                _apply_read_layer(conn, tree.read, reapply, layer, object_wait_s, say)
            if as_owner:
                conn.execute(roles.GRANTS.read_text(encoding="utf-8"))
        if not todo and layer.current:
            say(f"Nothing to apply: all {len(tree.versioned)} migrations are applied and the read layer "
                f"({len(tree.read)} files) is current.")
        return len(todo)
    finally:
        locks.unlock(conn, "migrations")


@dataclass(frozen=True)
class _Relation:
    oid: int
    namespace: str
    name: str
    kind: str
    owner: str

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.namespace, self.name)

    def wait_alone(self, conn: psycopg.Connection, deadline: float) -> None:
        """Queue for this relation's lock, holding none of the others, until `deadline` (time.monotonic())."""
        left_ms = max(1, round((deadline - time.monotonic()) * 1000))
        conn.execute(BOUND_OBJECT_WAIT, (f"{left_ms}ms",))
        conn.execute(WAIT_FOR_ALONE[self.kind].format(self.identifier, sql.Identifier(self.owner)))


class _Busy(Exception):
    def __init__(self, relation: _Relation) -> None:
        self.relation = relation


def _lock_up_front(conn: psycopg.Connection, wait_s: float) -> None:
    """Take every table and view lock the deploy needs before it changes anything. A map call holds the views it
    has read until it ends and may then ask for another: a deploy that locked them one by one as it replaced them
    deadlocked with it (migrations/read/README.md).

    The read gate first, as every map call and history capture takes it first: the calls under way end, and those
    that come meanwhile queue behind the deploy holding nothing. Then the rest, all at once without waiting, for
    sessions that pass no gate (an operator's psql, another app); when one is busy, the rest are let go and that
    one alone is waited for, then they are tried again. The whole is bounded by `wait_s`
    (FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT)."""
    relations = [_Relation(*row) for row in conn.execute(RELATIONS_TO_LOCK).fetchall()]
    deadline = time.monotonic() + wait_s
    gate = next((relation for relation in relations if str(relation) == READ_GATE), None)
    if gate is not None:  # absent until migration 23 has run
        try:
            with conn.transaction():
                gate.wait_alone(conn, deadline)
        except psycopg.errors.LockNotAvailable:
            raise _held_too_long(conn, gate, wait_s) from None
    first: _Relation | None = None
    while True:
        try:
            with conn.transaction():  # a savepoint: an attempt that fails lets go of all it took
                if first is not None:
                    first.wait_alone(conn, deadline)
                for relation in relations:
                    if relation != first:
                        _lock_unless_busy(conn, relation)
            break
        except _Busy as busy:
            first = busy.relation
        except psycopg.errors.LockNotAvailable:
            assert first is not None
            raise _held_too_long(conn, first, wait_s) from None
    conn.execute(BOUND_OBJECT_WAIT, (f"{round(wait_s * 1000)}ms",))


def _held_too_long(conn: psycopg.Connection, relation: _Relation, wait_s: float) -> MigrationError:
    return MigrationError(
        f"the deploy waited {wait_s:g} s for {relation}, which a running query holds: "
        f"{locks.relation_holder(conn, relation.oid)}. Nothing of the deploy is applied; run it again when that "
        "query has ended, or raise FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT")


def _lock_unless_busy(conn: psycopg.Connection, relation: _Relation) -> None:
    try:
        conn.execute(LOCK_NOW.format(relation.identifier))
    except psycopg.errors.LockNotAvailable:
        raise _Busy(relation) from None


def not_ready(conn: psycopg.Connection, tree: Tree) -> str | None:
    """Why a run of this release must not write to this database (its schema is not this release's), or None."""
    if not _tracking(conn)[0]:
        adopt = " (or, for the original system's database, --baseline)" if baseline.objects_present(conn) else ""
        return (f"this database is not deployed by this release (no tickets.schema_migrations): run the migrations: "
                f"python run_migrations.py{adopt}; nothing was written")
    applied = set(applied_checksums(conn))
    waiting = [m.name for m in tree.versioned if m.name not in applied]
    if waiting:
        return (f"{len(waiting)} migration(s) of this release are not applied to this database ({waiting[0]}"
                f"{' … ' + waiting[-1] if len(waiting) > 1 else ''}): run the migrations: python run_migrations.py; "
                "nothing was written")
    return None


def database_not_ready() -> str | None:
    """not_ready() for DATABASE_URL's database: what an ingest, geocoding or history run checks before it writes."""
    with database.connect() as conn:
        return not_ready(conn, discover())


def planted_in_public(conn: psycopg.Connection, todo: Sequence[SqlFile]) -> list[str]:
    """Functions and operators in public, made by another role and no extension, that the pending files run with
    public on their path could call instead of what they mean."""
    legacy = [m for m in todo if m.number <= LAST_PUBLIC_PATH_MIGRATION]
    if not legacy:
        return []
    called = sorted({name.lower() for m in legacy for name in CALLED.findall(m.sql)})
    return [line for (line,) in conn.execute(PLANTED_IN_PUBLIC, {"called": called}).fetchall()]


def deploy_refusal(conn: psycopg.Connection, todo: Sequence[SqlFile]) -> str | None:
    """Why a deploy of `todo` would be refused before it runs anything (--status says it ahead), or None."""
    return postgis_refusal(conn) or planted_refusal(conn, todo)


POSTGIS_SCHEMA = """
SELECT e.extnamespace::pg_catalog.regnamespace::pg_catalog.text FROM pg_catalog.pg_extension AS e
WHERE e.extname OPERATOR(pg_catalog.=) 'postgis'
"""


def postgis_refusal(conn: psycopg.Connection) -> str | None:
    """Why a deploy would fail on where PostGIS is installed, or None: the migrations name it public.… (and
    01-21 search public for it); a managed server may have put it in a schema of its own."""
    row = conn.execute(POSTGIS_SCHEMA).fetchone()
    if row is None or row[0] == "public":
        return None
    return (f"PostGIS is installed in schema {outward.line(row[0])}, and fleettickets names it in schema public. "
            "PostGIS cannot be moved (ALTER EXTENSION … SET SCHEMA refuses): as a superuser, DROP EXTENSION postgis; "
            "CREATE EXTENSION postgis SCHEMA public; then deploy again. If something else uses PostGIS, the DROP "
            "refuses and names it: give fleettickets a database of its own")


def planted_refusal(conn: psycopg.Connection, todo: Sequence[SqlFile]) -> str | None:
    """Why a deploy of `todo` would be refused for what another role planted in public, or None."""
    planted = planted_in_public(conn, todo)
    if planted:
        legacy = [m.name for m in todo if m.number <= LAST_PUBLIC_PATH_MIGRATION]
        return (
            f"schema public holds {len(planted)} object(s) another role made that {legacy[0]}"
            f"{' … ' + legacy[-1] if len(legacy) > 1 else ''} (run with public on their path, for PostGIS) could "
            f"call instead of the built-ins they mean: {'; '.join(outward.line(p) for p in planted)}. Look at them "
            "with \\df public.* and \\do public.* in psql; move each to its owner's schema (ALTER FUNCTION … SET "
            "SCHEMA …) or drop it, then deploy again; nothing was changed")
    return None


def _check_adoption(conn: psycopg.Connection, adopt: bool) -> None:
    """A database with objects but none of our tracking was built by another runner: only --baseline deploys it;
    --baseline deploys nothing else."""
    tracked, _read = _tracking(conn)
    built_elsewhere = not tracked and baseline.objects_present(conn)
    if built_elsewhere and not adopt:
        raise MigrationError(
            "this database has fleettickets' objects but no tickets.schema_migrations: another runner built it "
            "(the original system's?). Adopt it with python run_migrations.py --baseline (see \"Cutover from the "
            "original system\" in docs/deployment-and-operations.md); nothing was changed")
    if adopt and tracked:
        raise baseline.BaselineRefused("this database is already deployed by this runner "
                                       "(tickets.schema_migrations exists): run python run_migrations.py without "
                                       "--baseline; nothing was changed")
    if adopt and not built_elsewhere:
        raise baseline.BaselineRefused("there is nothing to adopt here (no tickets or reporting objects): deploy "
                                       "an empty database with python run_migrations.py; nothing was changed")


def _apply_read_layer(conn: psycopg.Connection, read_files: Sequence[SqlFile], reapply: Sequence[SqlFile],
                      layer: ReadLayerState, object_wait_s: float, say: Callable[[str], None]) -> None:
    for gone in layer.gone:
        say(f"warning: migrations/read/ no longer defines {gone}; it stays in the database as it is (only a "
            "versioned migration drops an object)")
    if len(reapply) == len(read_files):
        count, why = f"{len(read_files)} files", layer.describe() or "with the migrations above"
    else:
        users = len(reapply) - len({f.name for f in reapply} & {*layer.new, *layer.changed, *layer.missing})
        count = f"{len(reapply)} of {len(read_files)} files"
        why = layer.describe() + (f"; and {users} that use{'s' if users == 1 else ''} them" if users else "")
    started = time.perf_counter()
    conn.execute(TRUSTED_PATH_ONLY)
    for read_file in reapply:
        _run_file(conn, read_file, f"read/{read_file.name}", object_wait_s)
    conn.execute(READ_FORGET)
    with conn.cursor() as cur:
        cur.executemany(READ_RECORD, [(f.name, f.checksum) for f in read_files])
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    say(f"Applying the read layer ({count}; {why}) … done in {elapsed_ms} ms")


def _run_file(conn: psycopg.Connection, sql_file: SqlFile, label: str, object_wait_s: float) -> int:
    """Run one file inside the deploy's transaction; returns its duration in ms."""
    started = time.perf_counter()
    try:
        conn.execute(sql_file.sql)
    except psycopg.errors.LockNotAvailable:
        raise MigrationError(
            f"{label} waited {object_wait_s:g} s for a lock that a running query holds on what it changes: the "
            "deploy was rolled back and nothing of it is applied; run it again when that query has ended, or "
            "raise FLEETTICKETS_MIGRATION_OBJECT_LOCK_WAIT") from None
    except psycopg.Error as error:
        raise MigrationError(f"{label} failed: {database.describe_error(error)}; the deploy was rolled back and "
                             "nothing of it is applied") from None
    return round((time.perf_counter() - started) * 1000)





def print_status(conn: psycopg.Connection, tree: Tree) -> None:
    if not _tracking(conn)[0] and baseline.objects_present(conn):
        print_adoption(conn, tree)
        return
    applied = applied_checksums(conn)
    adopted = baseline.baselined(conn)
    waiting = [m for m in tree.versioned if m.name not in applied]
    for migration in tree.versioned:
        state = "pending" if migration in waiting else "baselined" if migration.name in adopted else "applied"
        print(f"{state:8} {migration.name}")
    refusal = deploy_refusal(conn, waiting)
    if refusal:
        print(f"a deploy would refuse: {refusal}")
    layer = read_layer_state(conn, tree.read)
    if layer.current:
        again = "; the next deploy re-applies it with the pending migrations" if waiting else ""
        print(f"read layer: current ({layer.files} files){again}")
        return
    reapply = layer.to_apply(tree.read, versioned_pending=bool(waiting))
    count = "all" if len(reapply) == layer.files else f"{len(reapply)} of"
    print(f"read layer: differs from what was applied; the next deploy re-applies {count} {layer.files} files:")
    touched = {**dict.fromkeys(layer.changed, "changed"), **dict.fromkeys(layer.new, "new"),
               **dict.fromkeys(layer.missing, "missing")}
    for read_file in reapply:
        print(f"  {touched.get(read_file.name, 'uses'):8} read/{read_file.name}")
    for gone in layer.gone:
        print(f"  removed  {gone}: its file is gone, the object stays (a versioned migration drops it)")


def print_adoption(conn: psycopg.Connection, tree: Tree) -> None:
    """--status on a database another runner built: what --baseline would find, changing nothing."""
    manifest = baseline.Manifest.load(tree.directory)
    differences = baseline.compare(manifest, baseline.snapshot(conn),
                                   baseline.recreated_functions(tree.directory, manifest))
    print("not deployed by this runner (no tickets.schema_migrations): another runner built this database. "
          "Compared with what migrations 01–13 make:")
    for difference in differences:
        print(f"  {difference.verdict:8} {outward.line(difference.describe())}")
    bound = baseline.bound_to_what_is_dropped(conn, tree.directory, manifest)
    for line in bound:
        print(f"  refused  {outward.line(line)}")
    if bound or any(d.refused for d in differences):
        print("--baseline would refuse: structure that holds data or runs code differs (marked refused)")
        return
    rest = [m.name for m in tree.versioned if m.name not in manifest.files]
    print(f"{'the same' if not differences else 'no difference that holds data or runs code'}: --baseline would "
          f"record {len(manifest.files)} files as baselined, carry the watermark over and apply {len(rest)} "
          "(" + (f"{rest[0]} … {rest[-1]}" if rest else "none") + ") and the read layer")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_migrations.py", description=__doc__.splitlines()[0])
    parser.add_argument("--status", action="store_true",
                        help="list applied and pending migrations and whether the read layer is current; change "
                             "nothing")
    parser.add_argument("--roles", action="store_true",
                        help="create the group roles fleettickets_owner/_ingest/_reader (NOLOGIN), hand the schemas "
                             "to fleettickets_owner and apply the grants; run once by a DBA, safe to repeat")
    parser.add_argument("--baseline", action="store_true",
                        help="adopt a database the original system built (its migrations 01-13, none of our "
                             "tracking): compare it with what 01-13 make, refuse if what holds data or runs code "
                             "differs, else record 01-13 as baselined, carry the importer's watermark over and "
                             "apply the rest; one transaction")
    parser.add_argument("--dir", type=Path, default=MIGRATIONS_DIR,
                        help="migrations folder, with the read layer in its read/ (default: %(default)s)")
    args = parser.parse_args(argv)

    def body() -> int:
        tree = discover(args.dir)
        with database.connect(settings.migration_database_url()) as conn:
            if args.status:
                print_status(conn, tree)
            elif args.roles:
                roles.apply(conn, deployed=_tracking(conn)[0] and not pending(conn, tree.versioned))
            else:
                migrate(conn, tree, adopt=args.baseline)
        return edge.EXIT_OK

    return edge.run(Log("run_migrations"), body, interrupted="a deploy is one transaction: nothing of an "
                    "unfinished one is applied")
