"""Outages of the bucket and the database mid-run: one clear line, exit 1, state = the last committed file."""

from __future__ import annotations

import os
import signal
import time

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
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE moved_at IS NULL") == 0
    assert bucket.keys("automations/inc/changes/") == []


# A COPY cut off mid-stream keeps its server session busy, not idle, until the statement's own timeout.
STALL = {"FLEETTICKETS_DATABASE_STALL_TIMEOUT": "3", "FLEETTICKETS_STATEMENT_TIMEOUT": "5"}
NEXT_RUN_STALL_S = 6
RUN_SESSIONS = """
SELECT a.pid FROM pg_stat_activity AS a
WHERE a.datname = current_database() AND a.application_name = 'fleettickets'
"""


def wait_for_no_run_session(db, timeout_s: float) -> float:
    started = time.monotonic()
    while db.query(RUN_SESSIONS):
        assert time.monotonic() - started < timeout_s, "the server kept the dead run's session"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.parametrize("where", ["between statements", "mid-COPY"])
def test_a_stalled_link_ends_the_run_in_one_line_and_the_server_lets_go_of_its_lock(ingests, db, bucket, db_proxy,
                                                                                    where):
    """The link drops every packet mid-run: both ends stay connected and silent. The run ends by itself (the
    previous main waited for ever), and the server ends its session, so the next run is not told for hours that
    "another run holds the lock"."""
    files = three_files(bucket, big_middle=True)
    started = time.monotonic()
    if where == "mid-COPY":
        db_proxy.freeze_after_upstream_bytes = 1_000_000
        process = ingests.start(STALL)
    else:
        process = ingests.start(STALL, fault="after_commit:stop")
        wait_until_stopped(process)
        db_proxy.freeze()
        started = time.monotonic()
        process.send_signal(signal.SIGCONT)

    code, out, err = finish(process)

    assert code == 1, out + err
    assert time.monotonic() - started < 60
    assert "the database did not answer within 3 s (FLEETTICKETS_DATABASE_STALL_TIMEOUT): the link or the " \
           "server is stalled" in err
    assert "Traceback" not in err
    # The server ends an idle session by itself. A COPY cut off mid-stream stays "active" on the server (until TCP
    # keepalives notice a link that is truly gone): the next run ends it, as one of ours silent for too long. That
    # run's own bound is above its statements' (as the settings say it must be): on a loaded machine, a healthy
    # statement once took more than 3 s.
    time.sleep(max(0.0, started + (2 * NEXT_RUN_STALL_S if where == "mid-COPY" else 2 * 3) + 1 - time.monotonic()))
    code, out, err = finish(ingests.start({"FLEETTICKETS_DATABASE_STALL_TIMEOUT": str(NEXT_RUN_STALL_S),
                                           "FLEETTICKETS_STATEMENT_TIMEOUT": "5", "DATABASE_URL": db.url}))
    assert code == 0, out + err
    assert ("lock was held by a run whose database link died" in err) == (where == "mid-COPY"), err
    assert table_state(db, "inc") == reference_state(files, "INC")
    wait_for_no_run_session(db, timeout_s=10)


@pytest.mark.parametrize("where", ["between statements", "mid-COPY"])
def test_sigterm_ends_a_run_stalled_on_a_silent_link_in_one_line(ingests, db, bucket, db_proxy, where):
    """docker stop, or a cron timeout, on a run that waits on a silent link: it ends at once, not after the stall
    bound, saying what it leaves; also when the link went silent with the socket's buffers full of a COPY."""
    three_files(bucket, big_middle=True)
    if where == "mid-COPY":
        db_proxy.freeze_after_upstream_bytes = 1_000_000  # well inside the 4 MB middle file's COPY
        process = ingests.start({"FLEETTICKETS_DATABASE_STALL_TIMEOUT": "600"})
    else:
        process = ingests.start({"FLEETTICKETS_DATABASE_STALL_TIMEOUT": "600"}, fault="after_commit:stop")
        wait_until_stopped(process)
        db_proxy.freeze()
        process.send_signal(signal.SIGCONT)
    time.sleep(3)
    assert process.poll() is None
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)

    code, out, err = finish(process)

    assert code == 143, out + err
    assert time.monotonic() - started < 60
    assert err.strip().splitlines()[-1].startswith("inc: error: terminated by SIGTERM")
    assert "Traceback" not in err


def test_a_frozen_database_backend_ends_the_run_in_one_line(ingests, db, bucket, pg_cluster):
    if pg_cluster is None:
        pytest.skip("needs the session's own PostgreSQL cluster")
    files = three_files(bucket)
    process = ingests.start(STALL, fault="after_commit:stop")
    wait_until_stopped(process)
    (backend,) = db.query(RUN_SESSIONS)
    os.kill(backend[0], signal.SIGSTOP)
    try:
        process.send_signal(signal.SIGCONT)
        code, out, err = finish(process)
    finally:
        os.kill(backend[0], signal.SIGCONT)

    assert code == 1, out + err
    assert "did not answer within 3 s (FLEETTICKETS_DATABASE_STALL_TIMEOUT)" in err and "Traceback" not in err
    assert db.scalar("SELECT status FROM tickets.ingest_runs") == "failed"  # closed on a fresh connection
    wait_for_no_run_session(db, timeout_s=15)  # continued, the backend finds its client gone
    code, out, err = finish(ingests.start({}))
    assert code == 0, out + err
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_a_run_session_carries_the_bounds_that_notice_a_dead_link_on_both_sides(db):
    """What cannot be staged without root (a peer's kernel that stops answering) rests on TCP keepalives and
    tcp_user_timeout: present on our socket (libpq) and on the server's (the session's settings)."""
    from fleettickets import database
    from fleettickets.settings import RunLimits

    with database.connect(limits=RunLimits.from_env()) as conn:
        ours = {option.keyword.decode(): (option.val or b"").decode() for option in conn.pgconn.info}
        servers = dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                                    (["tcp_keepalives_idle", "tcp_user_timeout", "idle_session_timeout"],)))
    assert {name: ours[name] for name in database.CLIENT_KEEPALIVES} == database.CLIENT_KEEPALIVES
    assert servers == {"tcp_keepalives_idle": "60", "tcp_user_timeout": "60000", "idle_session_timeout": "360000"}


def test_a_bucket_gone_after_the_commit_ends_the_archive_step_at_the_first_file(ingests, db, bucket, s3_proxy):
    """The previous main tried every file of the batch in turn, one error line and the S3 timeouts each (about
    five minutes a file by default) while the dataset's lock was held."""
    files = three_files(bucket)
    process = ingests.start({"FLEETTICKETS_BATCH_FILES": "50"}, fault="after_commit:stop")
    wait_until_stopped(process)
    s3_proxy.down()
    process.send_signal(signal.SIGCONT)

    code, out, err = finish(process)

    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("inc: error: S3 copying automations/inc/changes/2026-11-20T06-00-00.csv")
    assert "the bucket cannot be reached, so the run stops moving files" in line
    assert SECRET not in out + err
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE status = 'applied'") == 3

    s3_proxy.up()
    code, out, err = finish(ingests.start({}))
    assert code == 0, out + err
    assert out.count("already applied by an earlier run (same ETag), not applied again") == 3
    assert table_state(db, "inc") == reference_state(files, "INC")
    assert bucket.keys("automations/inc/changes/") == []
