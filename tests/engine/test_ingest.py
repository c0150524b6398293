"""The ingest engine end to end: real PostgreSQL+PostGIS, moto's S3 server over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import psycopg

from fleettickets import locks, schema
from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import HEADER, ROOT, change_file, changes, run_subprocess, sample_files, ticket_row

# -- draining the samples ------------------------------------------------------

def test_samples_are_drained_into_typed_rows_and_archived(db, bucket, run_import):
    keys = bucket.put_samples("inc")

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    assert bucket.keys("automations/inc/changes/") == []
    assert bucket.keys("automations/inc/processed/") == [k.replace("/changes/", "/processed/") for k in keys]
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == keys[-1]
    assert db.scalar("SELECT metadata ? 'last_success_at' FROM tickets.import_meta WHERE dataset = 'inc'")
    # Typed columns as the contract reads them: region lowered, raw_status upper, EAT → UTC.
    assert db.query("SELECT region, raw_status, closed_at, mttr FROM tickets.inc WHERE ticket_id = 'INC000017000000'"
                    ) == [("nairobi", "CLOSED", dt.datetime(2026, 11, 20, 2, 42, tzinfo=dt.UTC), 56)]
    assert db.scalar("SELECT count(*) FROM tickets.inc WHERE raw ? 'source_snapshot_id' OR raw ? 'department'") == 0
    assert db.scalar("SELECT count(*) FROM tickets.inc WHERE ticket_id LIKE 'EXPORT%%'") == 0
    assert db.query("SELECT status, files_applied, files_archived FROM tickets.ingest_runs") == [("ok", 3, 3)]
    assert "applied 2026-11-20T06-40-00.csv: 41 rows read" in outcome.out


def test_a_second_run_is_a_noop_that_touches_nothing(db, bucket, run_import):
    bucket.put_samples("inc")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    before = db.query("SELECT ticket_id, xmin::text, ingested_at FROM tickets.inc ORDER BY 1")
    ledger = db.query("SELECT * FROM tickets.ingest_files ORDER BY key")
    bucket_before = bucket.keys()

    again = run_import("inc", "--from-bucket", "--apply")

    assert again.code == 0
    assert "nothing new" in again.out
    assert db.query("SELECT ticket_id, xmin::text, ingested_at FROM tickets.inc ORDER BY 1") == before
    assert db.query("SELECT * FROM tickets.ingest_files ORDER BY key") == ledger
    assert bucket.keys() == bucket_before


def test_inc_and_crq_in_one_bucket_keep_to_themselves(db, bucket, run_import):
    inc_keys = bucket.put_samples("inc")
    crq_keys = bucket.put_samples("crq")

    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert bucket.keys("automations/crq/changes/") == crq_keys
    assert db.scalar("SELECT count(*) FROM tickets.crq") == 0
    assert run_import("crq", "--from-bucket", "--apply").code == 0

    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    assert table_state(db, "crq") == reference_state(sample_files("crq"), "CRQ")
    assert dict(db.query("SELECT dataset, metadata->>'source_max_key' FROM tickets.import_meta")) == {
        "inc": inc_keys[-1], "crq": crq_keys[-1]}
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.ingest_files GROUP BY dataset")) == {
        "inc": len(inc_keys), "crq": len(crq_keys)}


# -- versions ----------------------------------------------------------------

def test_versions_applied_out_of_order_end_at_the_newest(db, bucket, run_import):
    newer = change_file(ticket_row("INC000000000001", "2026-11-20 06:10:00", status="Resolved"),
                        ticket_row("INC000000000002", "2026-11-20 06:00:00", status="Tie Later File"))
    older = change_file(ticket_row("INC000000000001", "2026-11-20 05:10:00", status="New"),
                        ticket_row("INC000000000002", "2026-11-20 06:00:00", status="Tie Earlier File"))
    bucket.put(changes("inc", "2026-11-20T06-20-00"), newer)
    assert run_import("inc", "--from-bucket", "--apply").code == 0

    bucket.put(changes("inc", "2026-11-20T06-00-00"), older)
    late = run_import("inc", "--from-bucket", "--apply")

    assert late.code == 0
    assert "arrived late" in late.err
    assert dict(db.query("SELECT ticket_id, raw_status FROM tickets.inc")) == {
        "INC000000000001": "RESOLVED", "INC000000000002": "TIE LATER FILE"}
    assert "0 new, 0 updated, 2 stale" in late.out


def test_duplicates_in_one_file_fold_to_the_newest_then_the_later_row(db, bucket, run_import):
    bucket.put(changes("inc", "2026-11-20T06-00-00"), change_file(
        ticket_row("INC000000000001", "2026-11-20 06:10:00", status="Newest"),
        ticket_row("INC000000000001", "2026-11-20 06:00:00", status="Older Row Last"),
        ticket_row("INC000000000002", "2026-11-20 06:00:00", status="First"),
        ticket_row("INC000000000002", "2026-11-20 06:00:00", status="Second")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    assert dict(db.query("SELECT ticket_id, raw_status FROM tickets.inc")) == {
        "INC000000000001": "NEWEST", "INC000000000002": "SECOND"}
    assert "folded 2 duplicates" in outcome.out


def test_reseed_over_applied_files_changes_no_row(db, bucket, run_import):
    keys = bucket.put_samples("inc")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    before = db.query("SELECT ticket_id, xmin::text, raw FROM tickets.inc ORDER BY 1")
    bucket.put_samples("inc")  # the cutover: the new bucket's changes/ holds the whole history

    reseed = run_import("inc", "--from-bucket", "--reseed", "--apply")

    assert reseed.code == 0, reseed.output
    assert db.query("SELECT ticket_id, xmin::text, raw FROM tickets.inc ORDER BY 1") == before
    assert "rows: 0 new, 0 updated" in reseed.out
    assert bucket.keys("automations/inc/changes/") == []
    assert len(bucket.keys("automations/inc/processed/")) == len(keys)


def test_a_rewritten_file_is_applied_again_with_a_warning(db, bucket, run_import):
    key = changes("inc", "2026-11-20T06-00-00")
    bucket.put(key, change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00", status="First")))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    bucket.put(key, change_file(ticket_row("INC000000000001", "2026-11-20 06:05:00", status="Rewritten")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    assert "rewritten by the export" in outcome.err
    assert db.scalar("SELECT raw_status FROM tickets.inc") == "REWRITTEN"
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == 2
    # Both versions are kept: the rewrite is archived beside the first, not over it.
    processed = bucket.keys("automations/inc/processed/")
    assert len(processed) == 2 and "automations/inc/processed/2026-11-20T06-00-00.csv" in processed
    assert {b"First" in bucket.get(k) for k in processed} == {True, False}


# -- bad input -----------------------------------------------------------------

GOOD_BEFORE = change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00"))
GOOD_AFTER = change_file(ticket_row("INC000000000002", "2026-11-20 06:00:00"))


def test_untrustworthy_files_are_rejected_with_their_reason_and_the_rest_applies(db, bucket, run_import):
    bad_files = {
        "2026-11-20T06-10-00": ("latin-1", (HEADER + "\n" + ticket_row("INC000000000003", "2026-11-20 06:00:00")
                                            .replace("Yaya", "Caf\xe9")).encode("latin-1"),
                                "line 2: not UTF-8: byte 0xe9"),
        "2026-11-20T06-20-00": ("no-ticket-id", b"id,status\nINC000000000004,New\n",
                                "line 1: no ticket_id column in the header"),
        "2026-11-20T06-30-00": ("unterminated-quote",
                                change_file(ticket_row("INC000000000005", "2026-11-20 06:00:00"),
                                            'INC000000000006,"New,oops').encode(),
                                "line 3: unterminated quoted field"),
    }
    bucket.put(changes("inc", "2026-11-20T06-00-00"), GOOD_BEFORE)
    for stamp, (_label, content, _reason) in bad_files.items():
        bucket.put(changes("inc", stamp), content)
    bucket.put(changes("inc", "2026-11-20T06-40-00"), GOOD_AFTER)

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert set(dict(db.query("SELECT ticket_id, 1 FROM tickets.inc"))) == {"INC000000000001", "INC000000000002"}
    assert bucket.keys("automations/inc/changes/") == []
    for stamp, (_label, content, reason) in bad_files.items():
        rejected_key = f"automations/inc/rejected/{stamp}.csv"
        assert bucket.get(rejected_key) == content  # nothing lost: the very bytes are kept
        assert reason in bucket.get(rejected_key + ".error.txt").decode()
        assert reason in outcome.err
        assert db.scalar("SELECT error FROM tickets.ingest_files WHERE key = %s AND status = 'rejected'",
                         (changes("inc", stamp),)).startswith(reason)
    # The next run has nothing new to reject: it is clean again.
    assert run_import("inc", "--from-bucket", "--apply").code == 0


def test_a_bad_row_is_kept_and_the_rest_of_its_file_applies(db, bucket, run_import):
    bucket.put(changes("inc", "2026-11-20T06-00-00"), change_file(
        ticket_row("INC000000000001", "2026-11-20 06:00:00"),
        ticket_row("INC000000000002", "2026-11-20 06:00:00") + ",extra",
        ticket_row("CRQ000000000003", "2026-11-20 06:00:00"),
        ticket_row("", "2026-11-20 06:00:00"),
        "INC000000000004,New,new",
        ticket_row("INC000000000005", "2026-11-20 06:00:00")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert {r[0] for r in db.query("SELECT ticket_id FROM tickets.inc")} == {"INC000000000001", "INC000000000005"}
    kept = db.query("SELECT line, reason, raw_text FROM tickets.rejected_rows ORDER BY line")
    assert [(line, reason) for line, reason, _ in kept] == [
        (3, "33 fields where the header has 32"),
        (4, "ticket_id 'CRQ000000000003' is not INC + 12 digits"),
        (5, "empty ticket_id"),
        (6, "3 fields where the header has 32"),
    ]
    assert kept[3][2] == "INC000000000004,New,new"
    assert bucket.keys("automations/inc/processed/") == ["automations/inc/processed/2026-11-20T06-00-00.csv"]
    assert "rejected 4" in outcome.out


def test_header_only_and_zero_byte_files_are_valid_empty_change_sets(db, bucket, run_import):
    bucket.put(changes("inc", "2026-11-20T06-00-00"), HEADER + "\n")
    bucket.put(changes("inc", "2026-11-20T06-20-00"), b"")

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    assert len(bucket.keys("automations/inc/processed/")) == 2
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE status = 'applied'") == 2


def test_keys_that_are_not_change_files_are_reported_and_left_alone(db, bucket, run_import):
    odd = ["automations/inc/changes/notes.txt", "automations/inc/changes/2026-11-20 06-00-00.csv",
           "automations/inc/changes/../2026-11-20T06-00-00.csv"]
    for key in odd:
        bucket.put(key, GOOD_BEFORE)

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    for key in odd:
        assert f"ignoring {key!r}" in outcome.err
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 0
    assert sorted(bucket.keys("automations/inc/changes/")) == sorted(odd)


# -- overlap -------------------------------------------------------------------

def test_a_run_finding_the_lock_taken_exits_0_and_touches_nothing(db, bucket, run_import):
    keys = bucket.put_samples("inc")
    with psycopg.connect(db.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", locks.key("inc"))
        outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    assert "holds the lock" in outcome.out
    assert bucket.keys("automations/inc/changes/") == keys
    assert db.scalar("SELECT count(*) FROM tickets.ingest_runs") == 0


def test_runs_started_together_apply_each_file_once(db, bucket):
    keys = bucket.put_samples("inc")
    procs = [subprocess.Popen([sys.executable, "-m", "inc.import_inc", "--from-bucket", "--apply"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]

    assert [code for *_, code in results] == [0, 0, 0], results
    assert sum(out.count("applied 2026-") for out, _err, _code in results) == len(keys)
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == len(keys)
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")


def test_inc_and_crq_started_together_both_apply_without_deadlock(db, bucket):
    bucket.put_samples("inc")
    bucket.put_samples("crq")
    procs = [subprocess.Popen([sys.executable, "-m", module, "--from-bucket", "--apply"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for module in ("inc.import_inc", "crq.import_crq", "inc.import_inc", "crq.import_crq")]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]

    assert [code for *_, code in results] == [0, 0, 0, 0], results
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    assert table_state(db, "crq") == reference_state(sample_files("crq"), "CRQ")
    assert dict(db.query("SELECT dataset, count(*) FROM tickets.ingest_files GROUP BY 1")) == {"inc": 3, "crq": 2}


# -- dry run -------------------------------------------------------------------

def test_dry_run_writes_nothing_and_reports_what_the_real_run_does(db, bucket, run_import):
    bucket.put_samples("inc")
    bucket.put(changes("inc", "2026-11-20T07-00-00"), change_file(
        ticket_row("INC000017000000", "2026-11-20 07:00:00"), "INC000000000009,broken"))
    bucket_before = bucket.keys()

    dry = run_import("inc", "--from-bucket")

    assert dry.code == 1  # a rejected row is worth a non-zero exit in a dry run too
    assert bucket.keys() == bucket_before
    for table in ("inc", "ingest_files", "ingest_runs", "rejected_rows"):
        assert db.scalar(f"SELECT count(*) FROM tickets.{table}") == 0
    assert db.scalar("SELECT metadata FROM tickets.import_meta WHERE dataset = 'inc'") == {}

    real = run_import("inc", "--from-bucket", "--apply")

    def per_file(output: str, verb: str) -> list[str]:
        return [line.split(f"{verb} ", 1)[1].rsplit(" (", 1)[0] for line in output.splitlines() if f": {verb} " in line]

    assert per_file(dry.out, "would apply") == per_file(real.out, "applied")
    assert len(per_file(real.out, "applied")) == 5  # four files, then their batch
    assert per_file(real.out, "applied")[-1] == ("a batch of 4 files in one transaction: 115 rows, 70 new, "
                                                  "0 updated, 0 stale; folded 45 duplicates")


# -- configuration and errors ------------------------------------------------------

def test_an_unmigrated_database_says_to_run_the_migrations(empty_db, run_import):
    outcome = run_import("inc", "--status")
    assert outcome.code == 1
    assert outcome.err.strip().endswith("(run the migrations: python run_migrations.py)")
    # As it says.
    assert schema.main([]) == 0
    assert run_import("inc", "--status").code == 0


def test_a_missing_variable_is_one_line_naming_it(db, bucket, run_import, monkeypatch):
    monkeypatch.delenv("RUSTFS_ENDPOINT")
    outcome = run_import("inc", "--from-bucket", "--apply")
    assert outcome.code == 1
    assert outcome.err.strip().splitlines() == [
        "inc: error: missing RUSTFS_ENDPOINT: set it to the S3 endpoint URL (path-style addressing), "
        "e.g. https://s3.example.com"]


def test_an_unreachable_bucket_is_one_line_without_secrets(db, bucket, monkeypatch):
    import devstack

    monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://127.0.0.1:{devstack.free_port()}")
    monkeypatch.setenv("RUSTFS_SECRET_KEY", "very-secret-value")
    result = run_subprocess("inc.import_inc", "--from-bucket", "--apply")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inc: error: S3 listing automations/inc/changes/ failed")
    assert "very-secret-value" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_local_files_take_the_same_path_without_the_bucket(db, run_import, tmp_path, monkeypatch):
    for name in ("RUSTFS_ENDPOINT", "RUSTFS_ACCESS_KEY", "RUSTFS_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    paths = []
    for name, content in reversed(sample_files("inc")):
        (tmp_path / name).write_bytes(content)
        paths.append(str(tmp_path / name))

    outcome = run_import("inc", "--inc-csv", *paths, "--apply")

    assert outcome.code == 0, outcome.output
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    applied = [line.split(": ")[1].split(" ")[1] for line in outcome.out.splitlines() if ": applied " in line]
    assert applied == [*(name for name, _ in sample_files("inc")), "a"]  # in name order, then their batch
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") is None


def test_post_apply_runs_after_every_applied_run_even_with_nothing_new(db, bucket, run_import, monkeypatch):
    def captured_at() -> object:
        return db.scalar("SELECT max(captured_at) FROM tickets.inc_daily_snapshot")

    bucket.put_samples("inc")
    assert run_import("inc", "--from-bucket").code == 0
    assert captured_at() is None  # a dry run captures nothing

    monkeypatch.setenv("PGOPTIONS", "-c fleettickets.now=2026-11-20T08:00:00+03:00")
    first = run_import("inc", "--from-bucket", "--apply")
    assert captured_at() == dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC)
    monkeypatch.setenv("PGOPTIONS", "-c fleettickets.now=2026-11-20T08:20:00+03:00")
    second = run_import("inc", "--from-bucket", "--apply")
    assert "nothing new" in second.out and "history captured" in second.out
    assert captured_at() == dt.datetime(2026, 11, 20, 5, 20, tzinfo=dt.UTC)
    monkeypatch.setenv("PGOPTIONS", "-c fleettickets.now=2026-11-20T08:40:00+03:00")
    assert run_import("crq", "--from-bucket", "--apply").code == 0  # CRQ has no post-apply step

    assert (first.code, second.code) == (0, 0)
    assert captured_at() == dt.datetime(2026, 11, 20, 5, 20, tzinfo=dt.UTC)


def test_status_shows_watermark_runs_and_counts_without_touching_anything(db, bucket, run_import):
    keys = bucket.put_samples("inc")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    bucket.put(changes("inc", "2026-11-20T07-00-00"), "ticket_id\nnot-a-ticket\n")
    assert run_import("inc", "--from-bucket", "--apply").code == 1

    status = run_import("inc", "--status")

    assert status.code == 0
    lines = status.out.splitlines()
    assert f"  watermark        {changes('inc', '2026-11-20T07-00-00')}" in lines
    newest = next(line for line in lines if line.startswith("  newest applied"))
    assert newest.startswith(f"  newest applied   {changes('inc', '2026-11-20T07-00-00')}: exported "
                             "2026-11-20 07:00 EAT (")
    placed = db.scalar("SELECT count(geom) FROM tickets.inc")
    assert f"  tickets          70 (45 open, {placed} with a point)" in lines
    assert "(last failure" in status.out
    assert "1 rejected rows kept" in status.out
    runs = [line for line in lines if line.startswith("    20")]
    assert len(runs) == 2 and " failed " in runs[0] and " ok " in runs[1]
    assert bucket.keys("automations/inc/processed/")[:len(keys)] == [k.replace("changes", "processed") for k in keys]


def test_a_reseed_in_a_terminal_shows_progress(db, bucket):
    import pty

    bucket.put_samples("inc")
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "inc.import_inc", "--from-bucket", "--reseed", "--apply"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data.decode())
    process.wait(timeout=60)
    os.close(leader)

    assert process.returncode == 0
    terminal = "".join(chunks)
    assert "[1/3] 2026-11-20T06-00-00.csv" in terminal and "[3/3] 2026-11-20T06-40-00.csv" in terminal


def test_a_late_file_never_moves_the_watermark_back(db, bucket, run_import):
    newer, late = changes("inc", "2026-11-20T06-20-00"), changes("inc", "2026-11-20T06-00-00")
    bucket.put(newer, change_file(ticket_row("INC000000000001", "2026-11-20 06:20:00")))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    bucket.put(late, change_file(ticket_row("INC000000000002", "2026-11-20 06:00:00")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0 and f"{late} arrived late" in outcome.err
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == newer


def test_rows_the_database_loses_on_the_way_make_the_file_fail_its_accounting(db, bucket, run_import):
    """The engine's own check that the database holds what the reader counted: a trigger (a DBA's, say) that
    silently swallows kept rejected rows must not let the file pass as applied."""
    db.execute("""
        CREATE FUNCTION tickets.swallow() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
        CREATE TRIGGER swallow BEFORE INSERT ON tickets.rejected_rows
            FOR EACH ROW EXECUTE FUNCTION tickets.swallow()""")
    key = changes("inc", "2026-11-20T06-00-00")
    bucket.put(key, change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00"),
                                ticket_row("INC1", "2026-11-20 06:00:00")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert "records do not add up: the reader counted 1 staged and 1 rejected rows, the database holds 1 and 0" in \
        outcome.err
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 0


def test_a_database_behind_this_release_says_which_migrations_wait_and_writes_nothing(db, bucket, run_import):
    bucket.put_samples("inc")
    newest = schema.discover().versioned[-1].name
    db.execute("DELETE FROM tickets.schema_migrations WHERE name = %s", (newest,))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    assert outcome.err.strip() == (f"inc: error: 1 migration(s) of this release are not applied to this database "
                                   f"({newest}): run the migrations: python run_migrations.py; nothing was written")
    assert db.scalar("SELECT count(*) FROM tickets.ingest_runs") == 0
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 0
