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
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

import devstack
import run_migrations
from processes import Ingests

# Per session, so sessions sharing a server (DATABASE_URL) never clone each other's template.
TEMPLATE_DB = f"fleettickets_template_{os.getpid()}"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@dataclass
class TestDatabase:
    __test__ = False  # a fixture value, not a test class
    url: str
    name: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def execute(self, statements: str, params: object = None) -> None:
        with self.connect() as conn:
            conn.execute(statements, params)

    def query(self, query: str, params: object = None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(query, params).fetchall()

    def scalar(self, query: str, params: object = None) -> object:
        rows = self.query(query, params)
        return rows[0][0] if rows else None


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
    with psycopg.connect(template_url, autocommit=True) as conn:
        run_migrations.migrate(conn, run_migrations.discover(), say=lambda _line: None)
    yield url
    drop_database(url, TEMPLATE_DB)


_database_numbers = itertools.count()


def create_database(admin_url: str, template: str = TEMPLATE_DB) -> TestDatabase:
    name = f"fleettickets_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY file_copy").format(
            sql.Identifier(name), sql.Identifier(template)))
    return TestDatabase(psycopg.conninfo.make_conninfo(admin_url, dbname=name), name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def empty_db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestDatabase]:
    """A database with nothing in it, not even PostGIS; DATABASE_URL points at it."""
    database = create_database(pg_admin_url, template="template0")
    monkeypatch.setenv("DATABASE_URL", database.url)
    yield database
    drop_database(pg_admin_url, database.name)


@pytest.fixture
def db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestDatabase]:
    """A freshly migrated database; DATABASE_URL points at it."""
    database = create_database(pg_admin_url)
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


@dataclass
class TestBucket:
    __test__ = False
    client: object
    name: str

    def put(self, key: str, body: bytes | str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def put_samples(self, dataset: str) -> list[str]:
        keys = []
        for path in sorted((SAMPLES / dataset / "changes").glob("*.csv")):
            key = f"automations/{dataset}/changes/{path.name}"
            self.put(key, path.read_bytes())
            keys.append(key)
        return keys


@pytest.fixture
def bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> TestBucket:
    """An empty `isptickets` bucket on the loopback S3 server; RUSTFS_* point at it."""
    httpx.post(f"{s3_server}/moto-api/reset").raise_for_status()
    for name, value in devstack.s3_environment(s3_server).items():
        monkeypatch.setenv(name, value)
    client = devstack.s3_client(s3_server)
    client.create_bucket(Bucket=devstack.BUCKET)
    return TestBucket(client, devstack.BUCKET)


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


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


def table_state(db: TestDatabase, table: str) -> dict[str, dict]:
    return dict(db.query(f"SELECT ticket_id, raw FROM tickets.{table}"))
