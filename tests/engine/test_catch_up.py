"""The archive in the bucket is the source of truth: a database restored from an earlier backup catches up from
processed/, and a database built from nothing out of the bucket alone equals the reference."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import devstack
from fleettickets import schema
from support.oracle import reference_state
from support.stack import TestDatabase, create_database, drop_database, table_state
from support.streamdata import change_file, changes, stamp_ago, ticket_row


def six_files() -> list[tuple[str, bytes]]:
    """Two files per round, the later ones updating tickets of the earlier ones, in export order."""
    files = []
    for number in range(6):
        stamp = stamp_ago(120 - 20 * number)
        rows = [ticket_row(f"INC{n:012d}", f"2026-11-20 0{number}:00:00", status=f"Step {number}")
                for n in range(number * 5, number * 5 + 15)]
        files.append((f"{stamp}.csv", change_file(*rows).encode()))
    return files


def upload(bucket, files: list[tuple[str, bytes]]) -> None:
    for name, content in files:
        bucket.put(changes("inc", name[:-4]), content)


def pg_tool(name: str, *args: str) -> None:
    subprocess.run([str(devstack.postgres_bindir() / name), *args], check=True, capture_output=True, timeout=120)


@contextmanager
def restored_from(dump, pg_admin_url: str, monkeypatch) -> Iterator[TestDatabase]:
    """The dump restored into a new database, which DATABASE_URL then points at; dropped afterwards."""
    restored = create_database(pg_admin_url, template="template0")
    try:
        pg_tool("pg_restore", f"--dbname={restored.url}", str(dump))
        monkeypatch.setenv("DATABASE_URL", restored.url)
        yield restored
    finally:
        drop_database(pg_admin_url, restored.name)


def test_a_database_restored_from_a_backup_catches_up_from_the_archive(db, bucket, run_import, pg_admin_url,
                                                                      monkeypatch, tmp_path):
    files = six_files()
    upload(bucket, files[:2])
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    dump = tmp_path / "nightly.dump"
    pg_tool("pg_dump", "--format=custom", "--encoding=UTF8", f"--file={dump}", db.url)
    upload(bucket, files[2:4])
    assert run_import("inc", "--from-bucket", "--apply").code == 0

    # The database is lost; last night's dump is restored into a new one, and the export goes on.
    restored = create_database(pg_admin_url, template="template0")
    try:
        pg_tool("pg_restore", f"--dbname={restored.url}", str(dump))
        monkeypatch.setenv("DATABASE_URL", restored.url)
        assert schema.main([]) == 0  # the runbook: bring the restored schema up to this release
        check = run_import("inc", "--check")
        assert check.code == 1
        assert "2 files in automations/inc/processed/ are not in the ledger" in check.out
        upload(bucket, files[4:])

        outcome = run_import("inc", "--from-bucket", "--apply")

        assert outcome.code == 0, outcome.output
        assert "catching up from automations/inc/processed/: 2 archived files are not in the ledger" in outcome.err
        assert table_state(restored, "inc") == reference_state(files, "INC")
        assert restored.scalar("SELECT count(*) FROM tickets.ingest_files") == 6
        assert sorted(bucket.keys("automations/inc/processed/")) == \
            [f"automations/inc/processed/{name}" for name, _ in files]
        assert run_import("inc", "--check").out.startswith("inc: healthy")
        assert "nothing new" in run_import("inc", "--from-bucket", "--apply").out
    finally:
        drop_database(pg_admin_url, restored.name)


def test_a_database_built_from_nothing_out_of_the_bucket_alone_equals_the_reference(db, bucket, run_import,
                                                                                    monkeypatch):
    files = six_files()
    upload(bucket, files[:4])
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    upload(bucket, files[4:])  # waiting in changes/ when the database is rebuilt
    db.execute("""TRUNCATE tickets.inc, tickets.ingest_files, tickets.ingest_runs, tickets.rejected_rows;
                  UPDATE tickets.import_meta SET metadata = '{}'""")

    # The documented command: migrations on an empty database, then the ordinary run (the runbook says so).
    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert "catching up from automations/inc/processed/: 4 archived files are not in the ledger" in outcome.err
    assert table_state(db, "inc") == reference_state(files, "INC")
    assert bucket.keys("automations/inc/changes/") == []


def test_a_catch_up_cut_short_by_the_run_deadline_goes_on_next_run(db, bucket, run_import, monkeypatch):
    files = six_files()
    upload(bucket, files)
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    db.execute("""TRUNCATE tickets.inc, tickets.ingest_files, tickets.ingest_runs, tickets.rejected_rows;
                  UPDATE tickets.import_meta SET metadata = '{}'""")
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", "1")
    monkeypatch.setenv("FLEETTICKETS_RUN_TIMEOUT", "0.000001")

    first = run_import("inc", "--from-bucket", "--apply")
    monkeypatch.setenv("FLEETTICKETS_RUN_TIMEOUT", "900")
    second = run_import("inc", "--from-bucket", "--apply")

    assert "files wait for the next run" in first.err
    assert second.code == 0, second.output
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_an_archived_file_over_todays_size_limit_is_still_caught_up(db, bucket, run_import, monkeypatch):
    """The operator raised the limit to let a big file through, then lowered it; the database is rebuilt: the
    archived copy passed the limit in force when it was applied, and is not lost now."""
    name = f"{stamp_ago(30)}.csv"
    content = change_file(*(ticket_row(f"INC{n:012d}", "2026-11-20 06:00:00") for n in range(20))).encode()
    upload(bucket, [(name, content)])
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", "10000000")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", str(len(content) // 2))
    db.execute("""TRUNCATE tickets.inc, tickets.ingest_files, tickets.ingest_runs, tickets.rejected_rows;
                  UPDATE tickets.import_meta SET metadata = '{}'""")

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert table_state(db, "inc") == reference_state([(name, content)], "INC")


def test_a_file_the_backup_holds_as_rejected_but_a_later_run_applied_is_caught_up(db, bucket, run_import, pg_admin_url,
                                                                                    monkeypatch, tmp_path):
    """Rejected (over the limit) before the dump; the operator raised the limit and put it back, so it was applied and
    archived; the dump is restored: its ledger says rejected, the archive says applied, and the archive wins."""
    name = f"{stamp_ago(30)}.csv"
    content = change_file(*(ticket_row(f"INC{n:012d}", "2026-11-20 06:00:00") for n in range(20))).encode()
    upload(bucket, [(name, content)])
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", str(len(content) // 2))
    assert run_import("inc", "--from-bucket", "--apply").code == 1
    dump = tmp_path / "nightly.dump"
    pg_tool("pg_dump", "--format=custom", "--encoding=UTF8", f"--file={dump}", db.url)
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", "10000000")
    bucket.client.copy_object(Bucket=bucket.name, Key=changes("inc", name[:-4]),
                              CopySource={"Bucket": bucket.name, "Key": f"automations/inc/rejected/{name}"})
    assert run_import("inc", "--from-bucket", "--apply").code == 0

    with restored_from(dump, pg_admin_url, monkeypatch) as restored:
        outcome = run_import("inc", "--from-bucket", "--apply")
        assert outcome.code == 0, outcome.output
        assert table_state(restored, "inc") == reference_state([(name, content)], "INC")


def test_a_late_file_applied_after_the_backup_is_caught_up_although_stamped_below_the_watermark(
        db, bucket, run_import, pg_admin_url, monkeypatch, tmp_path):
    """The watermark in the dump is the newest stamp; a late file stamped below it (by less than LATE_WINDOW) was
    applied after the dump and archived under its own stamp: listing processed/ from the watermark would miss it."""
    newest = (f"{stamp_ago(60)}.csv", change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")).encode())
    upload(bucket, [newest])
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    dump = tmp_path / "nightly.dump"
    pg_tool("pg_dump", "--format=custom", "--encoding=UTF8", f"--file={dump}", db.url)
    late = (f"{stamp_ago(60 + 12 * 60)}.csv",
            change_file(ticket_row("INC000000000002", "2026-11-20 05:00:00")).encode())
    upload(bucket, [late])
    assert run_import("inc", "--from-bucket", "--apply").code == 0

    with restored_from(dump, pg_admin_url, monkeypatch) as restored:
        outcome = run_import("inc", "--from-bucket", "--apply")
        assert outcome.code == 0, outcome.output
        assert table_state(restored, "inc") == reference_state([newest, late], "INC")


def test_an_archived_copy_stamped_years_ahead_is_held_as_the_same_key_in_changes_is(db, bucket, run_import):
    """The previous main applied it at once and made it the watermark, so catch-up later started from 2031."""
    (name, content), = six_files()[:1]
    bucket.put(f"automations/inc/processed/{name}", content)
    ahead = "automations/inc/processed/2031-01-01T06-00-00.csv"
    bucket.put(ahead, change_file(ticket_row("INC000000000999", "2031-01-01 06:00:00")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert (f"inc: warning: not catching up '{ahead}': stamped more than 1 h ahead of now; it is caught up once "
            "its time comes; left where it is") in outcome.err
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == \
        changes("inc", name[:-4])
    assert db.scalar("SELECT count(*) FROM tickets.inc WHERE ticket_id = 'INC000000000999'") == 0
    check = run_import("inc", "--check", "--max-file-age", "100000", "--max-run-age", "100000")
    assert "not in the ledger" not in check.out
