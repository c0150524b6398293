"""The test bed: a real PostgreSQL+PostGIS cluster and a real S3 server on loopback.

When DATABASE_URL is set it is used as the admin connection (it must be allowed
to create databases); otherwise the session starts its own throwaway cluster.
Every test gets a fresh database cloned from a migrated template, which takes
a few tens of milliseconds instead of re-running the migrations.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

import devstack
from fleettickets import database, schema
from support import hostile, releases
from support.processes import Ingests
from support.stack import TEMPLATE_DB, Outcome, TestBucket, TestDatabase, create_database, drop_database

# FLEETTICKETS_TEST_BED=hostile runs every database test on a server configured as a DBA might, beside a tenant
# who planted shadows of everything our SQL calls (tests/support/hostile.py); unset, on PostgreSQL's defaults.
TEST_BED = os.environ.get("FLEETTICKETS_TEST_BED", "clean")
if TEST_BED not in ("clean", "hostile"):
    raise pytest.UsageError(f"FLEETTICKETS_TEST_BED={TEST_BED!r}: use clean (the default) or hostile")
HOSTILE = TEST_BED == "hostile"
HOSTILE_EMPTY_DB = f"fleettickets_hostile_empty_{os.getpid()}"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[devstack.PgCluster | None]:
    if os.environ.get("DATABASE_URL"):
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="fleettickets-pg-"))
    cluster = devstack.PgCluster(directory, devstack.free_port())
    try:
        cluster.init()
        cluster.start(durable=False)
    except devstack.StackError as error:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.exit(f"cannot start a test PostgreSQL cluster: {error}", returncode=3)
    yield cluster
    cluster.remove()


@pytest.fixture(scope="session")
def pg_admin_url(pg_cluster: devstack.PgCluster | None) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL") or pg_cluster.url
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    except psycopg.OperationalError as error:
        pytest.exit(f"test database unreachable: {' '.join(str(error).split())}", returncode=3)
    template_url = psycopg.conninfo.make_conninfo(url, dbname=TEMPLATE_DB)
    if HOSTILE:
        with psycopg.connect(url, autocommit=True) as conn:
            hostile.prepare_tenant(conn)
            hostile.configure_cluster(conn)
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(HOSTILE_EMPTY_DB)))
        with psycopg.connect(psycopg.conninfo.make_conninfo(url, dbname=HOSTILE_EMPTY_DB), autocommit=True) as conn:
            hostile.plant(conn, hostile.PROJECT_ROLES, with_public=False)
        with psycopg.connect(template_url, autocommit=True) as conn:
            hostile.plant(conn, hostile.PROJECT_ROLES, with_public=False)
    with database.connect(template_url) as conn:
        schema.migrate(conn, schema.discover(), say=lambda _line: None)
    if HOSTILE:
        with psycopg.connect(template_url, autocommit=True) as conn:
            hostile.plant(conn, (), with_public=True)
    yield url
    drop_database(url, TEMPLATE_DB)
    if HOSTILE:
        drop_database(url, HOSTILE_EMPTY_DB)


# The fast tier: every test that needs neither server, marked at collection from the fixtures it asks for, so a
# new test joins its tier by what it uses (./dev test --fast runs it without starting either).
SERVERS = frozenset({"pg_cluster", "s3_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVERS.isdisjoint(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session", autouse=True)
def harness_reads_its_own_dates() -> Iterator[None]:
    """On the hostile bed the tests' own connections (not ours: those set application_name 'fleettickets' and
    pin their world themselves) read dates, intervals and times as the assertions expect them."""
    if not HOSTILE:
        yield
        return
    real_connect = psycopg.connect

    def connect(*args: object, **kwargs: object) -> psycopg.Connection:
        if kwargs.get("application_name") != hostile.OUR_APPLICATION:
            kwargs.setdefault("options", hostile.HARNESS_OPTIONS)
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    psycopg.connect = connect  # type: ignore[assignment]
    yield
    psycopg.connect = real_connect


def assert_nothing_planted_ran(database_: TestDatabase) -> None:
    if HOSTILE:
        with database_.connect() as conn:
            hits = hostile.tripwire_hits(conn)
        assert hits == 0, f"a planted shadow ran {hits} time(s) in a session of ours (its error says which)"


@pytest.fixture
def empty_db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestDatabase]:
    """A database with nothing in it, not even PostGIS; DATABASE_URL points at it."""
    database = create_database(pg_admin_url, template=HOSTILE_EMPTY_DB if HOSTILE else "template0")
    monkeypatch.setenv("DATABASE_URL", database.url)
    yield database
    assert_nothing_planted_ran(database)
    drop_database(pg_admin_url, database.name)


@pytest.fixture
def db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestDatabase]:
    """A freshly migrated database; DATABASE_URL points at it."""
    database = create_database(pg_admin_url)
    monkeypatch.setenv("DATABASE_URL", database.url)
    yield database
    assert_nothing_planted_ran(database)
    drop_database(pg_admin_url, database.name)


@pytest.fixture
def original_db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestDatabase]:
    """The original system's database: 01–13 applied with psql; DATABASE_URL points at it."""
    database = create_database(pg_admin_url, template="template0")
    for migration in releases.original_files():
        releases.psql_file(database.url, migration.path)
    monkeypatch.setenv("DATABASE_URL", database.url)
    yield database
    drop_database(pg_admin_url, database.name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = devstack.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    devstack.wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> TestBucket:
    """An empty `isptickets` bucket on the loopback S3 server; RUSTFS_* point at it."""
    httpx.post(f"{s3_server}/moto-api/reset").raise_for_status()
    for name, value in devstack.s3_environment(s3_server).items():
        monkeypatch.setenv(name, value)
    client = devstack.s3_client(s3_server)
    client.create_bucket(Bucket=devstack.BUCKET)
    return TestBucket(client, devstack.BUCKET)


@pytest.fixture
def ingests() -> Iterator[Ingests]:
    """Start ingest runs as child processes; any still running at the end of the test is killed."""
    started = Ingests()
    try:
        yield started
    finally:
        started.kill_leftovers()


@pytest.fixture
def run_import(capsys):
    """Run an entrypoint in-process, e.g. run_import("inc", "--from-bucket", "--apply")."""
    from crq import import_crq
    from inc import import_inc

    def run(dataset: str, *args: str) -> Outcome:
        capsys.readouterr()
        code = {"inc": import_inc, "crq": import_crq}[dataset].main(list(args))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


_role_numbers = itertools.count()


@pytest.fixture
def roles(db: TestDatabase) -> Iterator[dict[str, str]]:
    """--roles applied to the test database, and one login role per group (dropped afterwards)."""
    schema.main(["--roles"])
    suffix = f"{os.getpid()}_{next(_role_numbers)}"
    logins = {group: f"ft_{group}_{suffix}" for group in ("owner", "ingest", "reader", "nobody")}
    with db.connect() as conn:
        for group, login in logins.items():
            member = sql.SQL("") if group == "nobody" else sql.SQL("IN ROLE {}").format(
                sql.Identifier(f"fleettickets_{group}"))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(login), member))
        if HOSTILE:
            hostile.plant(conn, logins.values(), with_public=False)
    yield {group: psycopg.conninfo.make_conninfo(db.url, user=login) for group, login in logins.items()}
    with db.connect() as conn:
        for login in logins.values():
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
