"""What the tests hold of the test bed: a database, a bucket, a command's outcome, a table's state.

The fixtures that make them are in tests/conftest.py; tests import these
types and helpers from here.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# Per session, so sessions sharing a server (DATABASE_URL) never clone each other's template.
TEMPLATE_DB = f"fleettickets_template_{os.getpid()}"


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


@dataclass
class TestBucket:
    __test__ = False
    client: object
    name: str

    def put(self, key: str, body: bytes | str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def put_multipart(self, key: str, body: bytes, part_bytes: int | None = None) -> str:
        """Upload `body` as `aws s3 cp` and n8n's S3 node upload a large file: in parts of `part_bytes` (S3's
        least is 5 MiB but for the last), one part when None. Returns the ETag, "<md5 of the parts'
        md5s>-<parts>", which is no MD5 of the bytes."""
        size = part_bytes or max(len(body), 1)
        chunks = [body[at:at + size] for at in range(0, len(body), size)] or [b""]
        upload = self.client.create_multipart_upload(Bucket=self.name, Key=key)["UploadId"]
        parts = [{"ETag": self.client.upload_part(Bucket=self.name, Key=key, UploadId=upload, PartNumber=number,
                                                  Body=chunk)["ETag"], "PartNumber": number}
                 for number, chunk in enumerate(chunks, start=1)]
        done = self.client.complete_multipart_upload(Bucket=self.name, Key=key, UploadId=upload,
                                                     MultipartUpload={"Parts": parts})
        return done["ETag"].strip('"')

    def etag(self, key: str) -> str:
        return self.client.head_object(Bucket=self.name, Key=key)["ETag"].strip('"')

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


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def table_state(db: TestDatabase, table: str) -> dict[str, dict]:
    return dict(db.query(f"SELECT ticket_id, raw FROM tickets.{table}"))


def reset_stack(db: TestDatabase, bucket: TestBucket, s3_server: str) -> None:
    """Between a property test's examples: no ticket, file, run or place recorded, and an empty bucket."""
    db.execute("""TRUNCATE tickets.inc, tickets.crq, tickets.ingest_files, tickets.ingest_runs, tickets.rejected_rows,
                         tickets.geo_clusters, tickets.geo_locations;
                  UPDATE tickets.import_meta SET metadata = '{}'""")
    httpx.post(f"{s3_server}/moto-api/reset").raise_for_status()
    bucket.client.create_bucket(Bucket=bucket.name)
