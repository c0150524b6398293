"""Outages of the bucket and the database mid-run: one clear line, exit 1, state = the last committed file."""

from __future__ import annotations

import signal

import psycopg
import pytest

from support.netproxy import Proxy
from support.oracle import reference_state
from support.processes import finish, wait_until_stopped
from support.stack import table_state
from support.streamdata import change_file, changes, ticket_row

SECRET = "do-not-print-this-secret"


@pytest.fixture(autouse=True)
def one_file_per_transaction(monkeypatch):
    """These outages strike between files' commits; batches have their own crash test (test_batches.py)."""
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", "1")


def three_files(bucket, big_middle: bool = False) -> list[tuple[str, bytes]]:
    rows_in_middle = 12_000 if big_middle else 3
    files = [
        ("2026-11-20T06-00-00.csv", change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00"))),
        ("2026-11-20T06-20-00.csv", change_file(*(ticket_row(f"INC0000000{n:05d}", "2026-11-20 06:20:00")
                                                  for n in range(rows_in_middle)))),
        ("2026-11-20T06-40-00.csv", change_file(ticket_row("INC000000000001", "2026-11-20 06:40:00",
                                                           status="Resolved"))),
    ]
    for name, content in files:
        bucket.put(changes("inc", name[:-4]), content)
    return [(name, content.encode()) for name, content in files]


@pytest.fixture
def s3_proxy(s3_server, bucket, monkeypatch):
    proxy = Proxy(int(s3_server.rsplit(":", 1)[1])).start()
    monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("RUSTFS_SECRET_KEY", SECRET)
    yield proxy
    proxy.stop()


def test_s3_down_at_start_changes_nothing(ingests, db, bucket, s3_proxy):
    three_files(bucket)
    s3_proxy.down()

    code, out, err = finish(ingests.start({}))

    assert code == 1
    assert err.strip().splitlines() == [err.strip()] and err.startswith("inc: error: S3 listing")
    assert SECRET not in out + err
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == 0
    assert len(bucket.keys("automations/inc/changes/")) == 3


def test_s3_down_mid_run_keeps_what_committed_and_the_rerun_finishes(ingests, db, bucket, s3_proxy):
    files = three_files(bucket)
    process = ingests.start({}, fault="after_commit:stop")
    wait_until_stopped(process)
    s3_proxy.down()
    process.send_signal(signal.SIGCONT)

    code, out, err = finish(process)

    assert code == 1
    assert "inc: error: S3 " in err and "Traceback" not in err
    assert SECRET not in out + err
    assert [k for (k,) in db.query("SELECT key FROM tickets.ingest_files")] == [changes("inc", "2026-11-20T06-00-00")]
    assert table_state(db, "inc") == reference_state(files[:1], "INC")
    assert db.scalar("SELECT status FROM tickets.ingest_runs") == "failed"

    s3_proxy.up()
    code, out, err = finish(ingests.start({}))
    assert code == 0, out + err
    assert table_state(db, "inc") == reference_state(files, "INC")
    assert len(bucket.keys("automations/inc/processed/")) == 3
    assert bucket.keys("automations/inc/changes/") == []


@pytest.fixture
def db_proxy(db, pg_cluster, monkeypatch):
    if pg_cluster is None:
        pytest.skip("needs the session's own PostgreSQL cluster")
    proxy = Proxy(pg_cluster.port).start()
    url = psycopg.conninfo.make_conninfo(db.url, port=str(proxy.port))
    monkeypatch.setenv("DATABASE_URL", url)
    yield proxy
    proxy.stop()


def test_connection_dropped_during_copy_rolls_that_file_back(ingests, db, bucket, db_proxy):
    files = three_files(bucket, big_middle=True)
    db_proxy.cut_after_upstream_bytes = 1_000_000  # well inside the 4 MB middle file's COPY

    code, out, err = finish(ingests.start({}))

    assert code == 1
    assert "database connection lost while applying automations/inc/changes/2026-11-20T06-20-00.csv" in err
    assert "Traceback" not in err
    assert [k for (k,) in db.query("SELECT key FROM tickets.ingest_files")] == [changes("inc", "2026-11-20T06-00-00")]
    assert table_state(db, "inc") == reference_state(files[:1], "INC")
    assert bucket.keys("automations/inc/changes/") == [changes("inc", n[:-4]) for n, _ in files[1:]]

    db_proxy.up()
    code, out, err = finish(ingests.start({}))
    assert code == 0, out + err
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_database_restarted_mid_run(ingests, db, bucket, pg_cluster):
    if pg_cluster is None:
        pytest.skip("needs the session's own PostgreSQL cluster")
    files = three_files(bucket)
    process = ingests.start({}, fault="after_commit:stop")
    wait_until_stopped(process)
    pg_cluster.restart(durable=False)
    process.send_signal(signal.SIGCONT)

    code, out, err = finish(process)

    assert code == 1
    assert "database connection lost" in err and "Traceback" not in err
    assert table_state(db, "inc") == reference_state(files[:1], "INC")
    # The run's log row was closed on a fresh connection, not left 'running'.
    assert db.scalar("SELECT status FROM tickets.ingest_runs") == "failed"

    code, out, err = finish(ingests.start({}))
    assert code == 0, out + err
    assert table_state(db, "inc") == reference_state(files, "INC")
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE archived_at IS NULL") == 0
    assert bucket.keys("automations/inc/changes/") == []
