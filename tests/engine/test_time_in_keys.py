"""A change file's stamp is data from outside: one that names no real time is not a change file, one too far ahead
is held, and nothing that reads a stored key fails on it. --status lists what runs leave alone; --check notices."""

from __future__ import annotations

import datetime as dt

import pytest

from fleettickets import sourcetime
from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import change_file, changes, ticket_row

IMPOSSIBLE = ["2026-13-01T06-00-00", "2026-02-30T06-00-00", "2026-11-20T24-00-00", "2026-11-20T06-60-00",
              "2026-11-20T06-00-61", "0000-01-01T00-00-00"]
NOW = "2026-11-20T08:00:00+03:00"


@pytest.fixture
def pinned_now(monkeypatch):
    """The database's clock (tickets.clock()), which runs, --status and --check read, at 08:00 EAT on 2026-11-20."""
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={NOW}")


@pytest.mark.parametrize("stamp", IMPOSSIBLE)
def test_a_key_naming_no_real_time_is_left_alone_and_nothing_fails_on_it(db, bucket, run_import, pinned_now, stamp):
    good = changes("inc", "2026-11-20T06-00-00")
    bad = changes("inc", stamp)
    bucket.put(good, change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")))
    bucket.put(bad, change_file(ticket_row("INC000000000002", "2026-11-20 06:00:00")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert f"inc: warning: ignoring {bad!r}: its stamp names no real time" in outcome.err
    assert bucket.keys("automations/inc/changes/") == [bad]
    assert db.query("SELECT ticket_id FROM tickets.inc") == [("INC000000000001",)]
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == good
    status = run_import("inc", "--status")
    assert status.code == 0 and f"{bad}: its stamp names no real time" in status.out


def test_a_stored_key_naming_no_real_time_cannot_break_status_or_check(db, bucket, run_import, pinned_now):
    """What an earlier version applied stays in the ledger and the watermark: reading it must not fail."""
    bad = changes("inc", "2026-13-01T06-00-00")
    db.execute("INSERT INTO tickets.ingest_files (dataset, key, etag, status, applied_at) "
               "VALUES ('inc', %s, 'x', 'applied', now())", (bad,))
    db.execute("UPDATE tickets.import_meta SET metadata = jsonb_build_object('source_max_key', %s::text, "
               "'last_success_at', now()) WHERE dataset = 'inc'", (bad,))

    status = run_import("inc", "--status")
    check = run_import("inc", "--check")

    assert status.code == 0 and "unexpected" not in status.output
    assert check.code == 1 and "unexpected" not in check.output and check.out.startswith("inc: unhealthy:")


def test_a_key_stamped_too_far_ahead_is_held_until_its_time_comes(db, bucket, run_import, monkeypatch, pinned_now):
    now = dt.datetime.fromisoformat(NOW)
    within = (now + sourcetime.FUTURE_TOLERANCE - dt.timedelta(minutes=1)).strftime(sourcetime.STAMP_FORMAT)
    ahead = (now + dt.timedelta(days=30)).strftime(sourcetime.STAMP_FORMAT)
    files = {changes("inc", within): change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")),
             changes("inc", ahead): change_file(ticket_row("INC000000000001", "2026-11-20 07:00:00",
                                                           status="Resolved"))}
    for key, content in files.items():
        bucket.put(key, content)

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert f"inc: warning: holding {changes('inc', ahead)!r}: stamped more than 1 h ahead of now" in outcome.err
    assert bucket.keys("automations/inc/changes/") == [changes("inc", ahead)]
    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == \
        changes("inc", within)
    assert "held until its time comes" in run_import("inc", "--status").out

    # Its time comes: applied, in order, like any file.
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={(now + dt.timedelta(days=30)).isoformat()}")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert table_state(db, "inc") == reference_state(
        [(key.rpartition("/")[2], content.encode()) for key, content in files.items()], "INC")


@pytest.mark.parametrize("key", ["automations/inc/changes/notes.txt", "automations/inc/changes/2026-13-01T06-00-00.csv",
                                 "automations/inc/changes/2027-11-20T06-00-00.csv"],
                         ids=["misnamed", "no-such-time", "far-ahead"])
def test_check_turns_unhealthy_when_something_is_left_in_changes_too_long(db, bucket, run_import, monkeypatch, key):
    bucket.put(changes("inc", dt.datetime.now(sourcetime.EAT).strftime(sourcetime.STAMP_FORMAT)),
               change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")))
    bucket.put(key, "whatever\n")
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert run_import("inc", "--check").code == 0  # just arrived: not yet a person's problem

    later = dt.datetime.now(sourcetime.EAT) + dt.timedelta(minutes=91)
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={later.isoformat()}")
    outcome = run_import("inc", "--check", "--max-run-age", "100000", "--max-file-age", "90")

    assert outcome.code == 1
    assert f"1 objects in automations/inc/changes/ left alone for over 90 min (oldest: {key}" in outcome.out

    # As --status says: delete it (or rename it to what it should be); --check is healthy again.
    bucket.client.delete_object(Bucket=bucket.name, Key=key)
    assert "left alone" not in run_import("inc", "--check", "--max-run-age", "100000",
                                          "--max-file-age", "100000").out


def test_a_late_file_changes_neither_the_watermark_nor_what_status_and_check_call_newest(db, bucket, run_import,
                                                                                         pinned_now):
    """Newest is by export time (the key), not by when a file was applied: a late file applied last, stamped
    below the watermark, is not the newest content."""
    newer, late = changes("inc", "2026-11-20T06-40-00"), changes("inc", "2026-11-20T06-20-00")
    bucket.put(newer, change_file(ticket_row("INC000000000001", "2026-11-20 06:40:00")))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    bucket.put(late, change_file(ticket_row("INC000000000002", "2026-11-20 06:20:00")))
    applied = run_import("inc", "--from-bucket", "--apply")
    assert applied.code == 0 and "arrived late" in applied.err

    status = run_import("inc", "--status")
    check = run_import("inc", "--check", "--max-file-age", "100000", "--max-run-age", "100000")

    assert db.scalar("SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = 'inc'") == newer
    assert f"newest applied   {newer}: exported 2026-11-20 06:40 EAT" in status.out
    assert check.code == 0 and "newest change file exported 1 h 20 min ago" in check.out, check.out
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 2
