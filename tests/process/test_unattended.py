"""Running unattended for years: deadlines on every wait, a geocoder that gives up on a dead provider, secrets in
no output, one line for the unforeseen, and a health check that says what is wrong."""

from __future__ import annotations

import datetime as dt
import re

import psycopg
import pytest

from fleettickets import clock, locks, schema, status
from support.fake_locationiq import FakeLocationIQ, Scripted
from support.netproxy import Proxy
from support.oracle import reference_state
from support.processes import finish
from support.stack import table_state
from support.streamdata import changes, closed_port, csv_text, stamp_ago, ticket_fields

EAT = dt.timezone(dt.timedelta(hours=3))


def three_files(bucket) -> list[tuple[str, bytes]]:
    files = []
    for minute, ticket in [(0, 1), (20, 2), (40, 3)]:
        name = f"2026-11-20T06-{minute:02d}-00.csv"
        content = csv_text([ticket_fields(f"INC00000000000{ticket}")]).encode()
        bucket.put(changes("inc", name[:-4]), content)
        files.append((name, content))
    return files


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- deadlines ------------------------------------------------------------------------------------------------

def test_a_storage_server_that_stalls_mid_body_ends_the_run_within_the_object_deadline(
        ingests, db, bucket, s3_server, monkeypatch):
    files = three_files(bucket)
    proxy = Proxy(int(s3_server.rsplit(":", 1)[1]), stall_body_for="2026-11-20T06-20-00").start()
    started = clock.monotonic()
    try:
        code, _out, err = finish(ingests.start({"RUSTFS_ENDPOINT": f"http://127.0.0.1:{proxy.port}",
                                                "FLEETTICKETS_OBJECT_TIMEOUT": "2"}))
    finally:
        proxy.stop()

    assert clock.monotonic() - started < 15
    assert code == 1
    assert "2026-11-20T06-20-00.csv" in one_error_line(err)
    assert table_state(db, "inc") == reference_state([files[0], files[2]], "INC")
    assert bucket.keys("automations/inc/changes/") == [changes("inc", "2026-11-20T06-20-00")]
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE key LIKE '%%06-20-00%%'") == 0


def test_a_lock_held_by_a_stuck_session_ends_the_run_within_the_lock_timeout(ingests, db, bucket):
    files = three_files(bucket)
    with db.connect() as stuck:
        stuck.execute("BEGIN")
        stuck.execute("LOCK TABLE tickets.inc IN ACCESS EXCLUSIVE MODE")
        started = clock.monotonic()
        code, _out, err = finish(ingests.start({"FLEETTICKETS_LOCK_TIMEOUT": "1"}))
        took = clock.monotonic() - started
        stuck.execute("ROLLBACK")

    assert took < 15
    assert code == 1
    line = one_error_line(err)
    assert "did not answer in time" in line and "lock timeout" in line
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == 0
    assert db.scalar("SELECT status FROM tickets.ingest_runs") == "failed"
    assert len(bucket.keys("automations/inc/changes/")) == 3

    code, _out, err = finish(ingests.start())
    assert code == 0, err
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_past_the_run_deadline_no_new_file_is_started(ingests, db, bucket):
    files = three_files(bucket)

    code, _out, err = finish(ingests.start({"FLEETTICKETS_RUN_TIMEOUT": "0.001"}))

    assert code == 0, err
    assert "3 files wait for the next run" in err
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == 0
    code, _out, err = finish(ingests.start())
    assert code == 0, err
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_migrations_wait_a_bounded_time_for_their_lock_and_name_the_holder(db, capsys, monkeypatch):
    monkeypatch.setenv("FLEETTICKETS_MIGRATION_LOCK_WAIT", "0.5")
    with db.connect() as holder:
        holder.execute("SET application_name = 'a stuck deploy'")
        assert locks.try_lock(holder, "migrations")
        pid = holder.info.backend_pid
        started = clock.monotonic()
        code = schema.main([])
    err = capsys.readouterr().err

    assert clock.monotonic() - started < 5
    assert code == 1
    assert f"the migrations lock is still held after 0.5 s by pid {pid} (role postgres, application 'a stuck deploy'" \
        in one_error_line(err)


# -- the geocoder under provider failure ------------------------------------------------------------------------



@pytest.fixture
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(clock, "sleep", recorded.append)
    return recorded


@pytest.fixture
def provider(monkeypatch):
    """Start a local LocationIQ with these places and scripted answers, and point the geocoder at it."""
    started: list[FakeLocationIQ] = []

    def start(places: dict[str, tuple[float, float]] | None = None, script: list[Scripted] | None = None):
        fake = FakeLocationIQ(places=places or {}, script=script or []).start()
        started.append(fake)
        monkeypatch.setenv("GEOCODER_URL", fake.url)
        monkeypatch.setenv("GEOCODER_API_KEY", "pk.test")
        monkeypatch.setenv("GEOCODER_RPS", "1000")
        return fake

    yield start
    for fake in started:
        fake.stop()


def pending_clusters(run_import, tmp_path, count: int) -> None:
    path = tmp_path / "2026-11-20T06-00-00.csv"
    path.write_text(csv_text([ticket_fields(f"INC{n:012d}", cluster=f"Cluster {n:02d}") for n in range(count)]))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0


def test_an_unreachable_provider_ends_the_run_at_once_and_costs_no_budget(db, run_import, tmp_path, waits,
                                                                           monkeypatch):
    pending_clusters(run_import, tmp_path, 15)
    monkeypatch.setenv("GEOCODER_URL", f"http://127.0.0.1:{closed_port()}/v1/search")
    monkeypatch.setenv("GEOCODER_API_KEY", "pk.test")

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    line = one_error_line(outcome.err)
    assert line.startswith("geocode: error: 127.0.0.1:") and "on 3 requests in a row; stopped asking" in line
    assert sum(wait for wait in waits if wait >= 1) <= 12  # backoff between attempts, none after the last
    assert db.scalar("SELECT coalesce(sum(requests), 0) FROM tickets.geocode_budget") == 0  # nothing was sent
    assert db.scalar("SELECT count(*) FROM tickets.geo_clusters") == 0  # nothing cached as an error either


def test_server_errors_in_a_row_stop_the_run_and_what_was_found_is_placed(db, run_import, tmp_path, waits,
                                                                          provider):
    pending_clusters(run_import, tmp_path, 4)
    fake = provider({"Cluster 00": (-1.29, 36.78)},
                    [Scripted(), Scripted(503), Scripted(502), Scripted(500), Scripted()])

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert "server error HTTP 500 on 3 requests in a row" in one_error_line(outcome.err)
    assert len(fake.requests) == 4
    assert db.scalar("SELECT requests FROM tickets.geocode_budget") == 4
    assert db.scalar("SELECT geo_source FROM tickets.inc WHERE ticket_id = 'INC000000000000'") == "cluster"


def test_tickets_found_before_a_rejected_key_are_placed(db, run_import, tmp_path, waits, provider):
    pending_clusters(run_import, tmp_path, 3)
    provider({"Cluster 00": (-1.29, 36.78), "Cluster 01": (-1.30, 36.79)},
             [Scripted(), Scripted(), Scripted(403, "Invalid key")])

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert "rejected the API key (HTTP 403)" in one_error_line(outcome.err)
    assert dict(db.query("SELECT ticket_id, geo_source FROM tickets.inc")) == {
        "INC000000000000": "cluster", "INC000000000001": "cluster", "INC000000000002": None}


@pytest.mark.parametrize(("body", "reason"), [
    ([{"lat": "NaN", "lon": "36.8", "osm_type": "way", "osm_id": "1"}], "coordinates out of range"),
    ([{"lat": "-1.29", "lon": "236.8", "osm_type": "way", "osm_id": "1"}], "coordinates out of range"),
    ([{"lat": "-1.29", "lon": "36.8", "display_name": "x" * (2 << 20)}], "an answer over 1048576 bytes"),
], ids=["nan", "longitude-out-of-range", "two-megabyte-answer"])
def test_an_answer_that_is_not_a_place_is_cached_as_an_error(db, run_import, tmp_path, waits, provider, body,
                                                             reason):
    pending_clusters(run_import, tmp_path, 1)
    provider(script=[Scripted(body=body)])

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert reason in outcome.err
    assert db.query("SELECT status, lat FROM tickets.geo_clusters") == [("error", None)]


# -- secrets ------------------------------------------------------------------------------------------------------

PASSWORD = "pa%ss$w@rd"
S3_SECRET = "s3-secret-Zq8v"
GEOCODER_KEY = "pk.geocoder-secret-9931"
SECRETS = [PASSWORD, "pa%25ss%24w%40rd", S3_SECRET, GEOCODER_KEY, "userinfo-pw-77"]


def assert_no_secret(*outputs: str) -> None:
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, f"{secret!r} printed in {output!r}"


def test_no_secret_reaches_any_output_of_any_failing_path(db, bucket, run_import, monkeypatch, tmp_path):
    monkeypatch.setenv("RUSTFS_SECRET_KEY", S3_SECRET)
    monkeypatch.setenv("GEOCODER_API_KEY", GEOCODER_KEY)
    good_url = db.url
    outputs: list[str] = []

    def run(dataset: str, *args: str) -> None:
        outcome = run_import(dataset, *args)
        outputs.append(outcome.output)

    # A rejected file and a bad row, whose reasons quote the secrets; then --status.
    bucket.put(changes("inc", "2026-11-20T06-00-00"), f"id,{S3_SECRET}\nINC1,{GEOCODER_KEY}\n")
    bucket.put(changes("inc", "2026-11-20T06-20-00"), csv_text([ticket_fields(f"INC{GEOCODER_KEY}")]))
    run("inc", "--from-bucket", "--apply")
    run("inc", "--status")
    # A database URL that does not parse, one that cannot be reached, userinfo in an endpoint.
    monkeypatch.setenv("DATABASE_URL", f"postgresql://fleettickets:{PASSWORD}@127.0.0.1:1/x")
    run("inc", "--from-bucket", "--apply")
    monkeypatch.setenv("DATABASE_URL", "postgresql://fleettickets:pa%25ss%24w%40rd@127.0.0.1:1/x")
    monkeypatch.setattr("fleettickets.database.CONNECT_ATTEMPTS", 1)
    run("inc", "--status")
    monkeypatch.setenv("DATABASE_URL", good_url)
    monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://someone:userinfo-pw-77@127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run("inc", "--from-bucket", "--apply")
    monkeypatch.setenv("GEOCODER_URL", f"http://someone:userinfo-pw-77@127.0.0.1:{closed_port()}/v1/search")
    monkeypatch.setattr(clock, "sleep", lambda _s: None)
    run("inc", "--geocode-clusters", "--apply")
    # Something nobody foresaw, carrying a secret in its message, with and without the debug traceback.
    monkeypatch.setattr("fleettickets.status.print_status",
                        lambda _dataset, _bucket: (_ for _ in ()).throw(RuntimeError(S3_SECRET)))
    run("inc", "--status")
    monkeypatch.setenv("FLEETTICKETS_DEBUG", "1")
    run("inc", "--status")

    # The files and rows kept word for word are data, not output: only what the run says about them is searched.
    error_files = [key for key in bucket.keys("automations/inc/rejected/") if key.endswith(".error.txt")]
    assert error_files
    assert_no_secret(*outputs, *(str(row) for row in db.query("SELECT * FROM tickets.ingest_runs")),
                     *(str(row) for row in db.query("SELECT * FROM tickets.ingest_files")),
                     *(bucket.get(key).decode() for key in error_files))
    assert "DATABASE_URL has an '@' that is not the one before the host" in outputs[2]
    assert "unexpected RuntimeError: *** (this is a bug" in outputs[-2] and "Traceback" not in outputs[-2]
    assert "Traceback" in outputs[-1]


# -- --check ------------------------------------------------------------------------------------------------------



def test_export_hours_count_only_between_six_and_nine_in_the_evening():
    day = dt.date(2026, 11, 20)
    at = lambda hour, minute=0: dt.datetime.combine(day, dt.time(hour, minute), EAT)  # noqa: E731
    assert status.export_hours_between(at(20, 40), at(23)) == dt.timedelta(minutes=20)
    assert status.export_hours_between(at(20, 40), at(5) + dt.timedelta(days=1)) == dt.timedelta(minutes=20)
    assert status.export_hours_between(at(20, 40), at(6, 50) + dt.timedelta(days=1)) == dt.timedelta(minutes=70)
    assert status.export_hours_between(at(20, 40), at(7) + dt.timedelta(days=1)) == dt.timedelta(minutes=80)
    assert status.export_hours_between(at(7), at(8)) == dt.timedelta(hours=1)


@pytest.fixture
def fresh_run(db, bucket, run_import):
    key = changes("inc", stamp_ago(5))
    bucket.put(key, csv_text([ticket_fields("INC000000000001")]))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    return key


def test_check_is_healthy_after_a_fresh_run(fresh_run, run_import):
    outcome = run_import("inc", "--check")
    assert outcome.code == 0, outcome.output
    assert re.fullmatch(r"inc: healthy: last success 0 min ago, newest change file exported [0-9]+ min ago\n",
                        outcome.out)


@pytest.mark.parametrize("condition", ["last run failed", "no recent success", "export stopped", "rejected waiting",
                                       "not archived"])
def test_check_is_unhealthy_saying_why(fresh_run, db, bucket, run_import, monkeypatch, condition):
    expected = {
        "last run failed": "the last run failed: S3 reading",
        "no recent success": "no successful run for",
        "export stopped": "the newest change file was exported",
        "rejected waiting": "1 files wait in automations/inc/rejected/",
        "not archived": "1 applied files not archived for over an hour",
    }[condition]
    args = []
    if condition == "last run failed":
        db.execute("INSERT INTO tickets.ingest_runs (dataset, mode, status, finished_at, error) "
                   "VALUES ('inc', 'bucket', 'failed', now(), 'S3 reading x failed')")
    elif condition == "no recent success":
        db.execute("UPDATE tickets.import_meta SET metadata = metadata || "
                   "jsonb_build_object('last_success_at', now() - interval '3 days') WHERE dataset = 'inc'")
        args = ["--max-run-age", "1"]
    elif condition == "export stopped":
        # Noon the next day, inside export hours whenever the test runs; "now" as the database sees it.
        noon = dt.datetime.combine(dt.datetime.now(EAT).date() + dt.timedelta(days=1), dt.time(12), EAT)
        monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={noon.isoformat()}")
        args = ["--max-file-age", "60", "--max-run-age", "100000"]
    elif condition == "rejected waiting":
        bucket.put("automations/inc/rejected/2026-11-20T06-00-00.csv", "id\n")
        bucket.put("automations/inc/rejected/2026-11-20T06-00-00.csv.error.txt", "why\n")
    else:
        db.execute("UPDATE tickets.ingest_files SET moved_at = NULL, applied_at = now() - interval '2 hours'")

    outcome = run_import("inc", "--check", *args)

    assert outcome.code == 1
    assert outcome.out.startswith("inc: unhealthy: ") and outcome.out.count("\n") == 1
    assert expected in outcome.out


def test_a_run_that_could_not_record_its_outcome_is_unhealthy_at_once(fresh_run, db, bucket, run_import,
                                                                       monkeypatch):
    """An operator's open transaction holds the watermark row: the run ends on its lock timeout and cannot close
    its own row either. The previous main's --check said healthy until the run-age limit."""
    bucket.put(changes("inc", stamp_ago(1)), csv_text([ticket_fields("INC000000000002")]))
    monkeypatch.setenv("FLEETTICKETS_LOCK_TIMEOUT", "1")
    with db.connect() as operator, operator.transaction():
        operator.execute("SELECT * FROM tickets.import_meta WHERE dataset = 'inc' FOR UPDATE")
        run = run_import("inc", "--from-bucket", "--apply")
    assert run.code == 1, run.output

    check = run_import("inc", "--check")

    assert check.code == 1, check.output
    assert db.scalar("SELECT status FROM tickets.ingest_runs ORDER BY run_id DESC LIMIT 1") == "running"
    assert "the last run (started 0 min ago) ended without recording its outcome" in check.out
    # As it says, the next run records it as failed.
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert db.scalar("SELECT status FROM tickets.ingest_runs ORDER BY run_id DESC LIMIT 1 OFFSET 1") == "failed"


def test_check_without_a_database_is_unhealthy_in_one_line(bucket, run_import, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/x")
    monkeypatch.setattr("fleettickets.database.CONNECT_ATTEMPTS", 1)
    outcome = run_import("inc", "--check")
    assert outcome.code == 1
    assert "cannot connect to the database" in one_error_line(outcome.err)


def test_the_lock_timeout_reaches_the_session(db, monkeypatch):
    from fleettickets import database, settings

    monkeypatch.setenv("FLEETTICKETS_LOCK_TIMEOUT", "7")
    monkeypatch.setenv("FLEETTICKETS_STATEMENT_TIMEOUT", "120")
    with database.connect(limits=settings.RunLimits.from_env()) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "7s"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "2min"
    with pytest.raises(psycopg.errors.QueryCanceled):
        monkeypatch.setenv("FLEETTICKETS_STATEMENT_TIMEOUT", "0.2")
        with database.connect(limits=settings.RunLimits.from_env()) as conn:
            conn.execute("SELECT pg_sleep(2)")


@pytest.mark.parametrize(("stall", "warned"), [
    ("5", ["FLEETTICKETS_STATEMENT_TIMEOUT (5 s)"]),
    ("4", ["FLEETTICKETS_STATEMENT_TIMEOUT (5 s)", "FLEETTICKETS_OBJECT_TIMEOUT (4 s)"]),
    ("5.5", []),
], ids=["equal-to-the-statement-bound", "below-both", "above-both"])
def test_a_stall_bound_not_above_the_bounds_it_must_exceed_is_named_at_the_run_start(db, bucket, run_import,
                                                                                     monkeypatch, stall, warned):
    """The settings say the stall bound must be above the statement and object bounds: else a long but healthy
    statement or read ends the run as a "stalled link", which sends the operator after the network."""
    monkeypatch.setenv("FLEETTICKETS_STATEMENT_TIMEOUT", "5")
    monkeypatch.setenv("FLEETTICKETS_OBJECT_TIMEOUT", "4")
    monkeypatch.setenv("FLEETTICKETS_DATABASE_STALL_TIMEOUT", stall)
    outcome = run_import("inc", "--from-bucket", "--apply")
    assert outcome.code == 0, outcome.err
    warnings = [line for line in outcome.err.splitlines() if "FLEETTICKETS_DATABASE_STALL_TIMEOUT" in line]
    assert len(warnings) == len(warned), outcome.err
    for line, bound in zip(warnings, warned, strict=True):
        assert line.startswith(f"inc: warning: FLEETTICKETS_DATABASE_STALL_TIMEOUT ({stall} s) is not above {bound}")


@pytest.mark.parametrize(("minutes_after_export", "healthy"), [(90, True), (91, False)], ids=["exactly", "one-more"])
def test_check_counts_a_file_late_only_when_more_than_max_file_age(db, bucket, run_import, monkeypatch,
                                                                   minutes_after_export, healthy):
    """The README: unhealthy when the newest file's export time is *more than* --max-file-age minutes old."""
    bucket.put(changes("inc", "2026-11-20T10-00-00"), csv_text([ticket_fields("INC000000000001")]))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    now = dt.datetime(2026, 11, 20, 10, 0, tzinfo=EAT) + dt.timedelta(minutes=minutes_after_export)
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={now.isoformat()}")

    outcome = run_import("inc", "--check", "--max-file-age", "90", "--max-run-age", "100000")

    assert (outcome.code == 0) is healthy, outcome.out


def test_a_run_that_kept_rejected_rows_says_why_it_failed_in_its_log_row(db, bucket, run_import):
    """--check said "the last run failed: see --status", and --status showed no reason: the run's row had none."""
    bucket.put(changes("inc", stamp_ago(5)), csv_text([ticket_fields("INC000000000001"), ticket_fields("INC42")]))

    assert run_import("inc", "--from-bucket", "--apply").code == 1
    check = run_import("inc", "--check")
    status_out = run_import("inc", "--status").out

    why = "1 row(s) rejected, kept in tickets.rejected_rows"
    assert check.code == 1 and f"the last run failed: {why}" in check.out, check
    assert why in status_out and "1 rejected rows kept" in status_out, status_out
    assert db.scalar("SELECT error FROM tickets.ingest_runs") == why
