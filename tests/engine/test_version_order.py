"""Which version of a ticket wins, when source_updated_at is padded, missing or unparseable, and when the export
rewrites a key: nothing is dropped as stale that the contract says is newer."""

from __future__ import annotations

import re

import pytest

from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import HEADER, change_file, changes, ticket_row

TICKET = "INC000000000001"


def put(bucket, stamp: str, *rows: str) -> tuple[str, bytes]:
    content = change_file(*rows)
    bucket.put(changes("inc", stamp), content)
    return f"{stamp}.csv", content.encode()


def stored_status(db) -> str:
    return str(db.scalar("SELECT raw->>'raw_status' FROM tickets.inc WHERE ticket_id = %s", (TICKET,)))


@pytest.mark.parametrize("batch_files", ["1", "50"], ids=["file-by-file", "one-batch"])
@pytest.mark.parametrize("later_updated", [" 2026-11-20 06:30:00", "2026-11-20 06:30:00 ", "", "   ", "yesterday"],
                         ids=["leading-space", "trailing-space", "empty", "spaces", "unparseable"])
def test_a_later_version_wins_whatever_its_source_updated_at_looks_like(db, bucket, run_import, monkeypatch,
                                                                         batch_files, later_updated):
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", batch_files)
    files = [put(bucket, "2026-11-20T06-20-00", ticket_row(TICKET, "2026-11-20 06:10:00", status="Assigned")),
             put(bucket, "2026-11-20T06-40-00", ticket_row(TICKET, later_updated, status="Resolved"))]

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert stored_status(db) == "RESOLVED"
    assert table_state(db, "inc") == reference_state(files, "INC")
    if later_updated.strip() in ("", "yesterday"):
        assert re.search(r"warning: 1 rows of (2026-11-20T06-20-00.csv, )?2026-11-20T06-40-00.csv have no readable "
                         r"source_updated_at: each was ordered by its file's export time", outcome.err), outcome.err
    else:
        assert "no readable source_updated_at" not in outcome.err
        assert db.scalar("SELECT source_updated_at = '2026-11-20 06:30:00+03' FROM tickets.inc")


def test_an_undated_version_does_not_beat_a_version_updated_after_its_export(db, bucket, run_import):
    """The export at 06:20 held the ticket as it stood then; a version updated at 06:30 is newer, whichever file
    it comes in."""
    files = [put(bucket, "2026-11-20T06-20-00", ticket_row(TICKET, "", status="Assigned")),
             put(bucket, "2026-11-20T06-10-00", ticket_row(TICKET, "2026-11-20 06:30:00", status="Resolved"))]
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert stored_status(db) == "RESOLVED"
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_an_undated_version_arriving_later_replaces_a_stored_one_from_an_earlier_export(db, bucket, run_import):
    files = [put(bucket, "2026-11-20T06-20-00", ticket_row(TICKET, "2026-11-20 06:10:00", status="Assigned"))]
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    files.append(put(bucket, "2026-11-20T06-40-00", ticket_row(TICKET, "not a time", status="Resolved")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0 and "1 new" not in outcome.out and "1 updated" in outcome.out
    assert table_state(db, "inc") == reference_state(files, "INC")


def test_a_rewritten_key_with_the_same_source_updated_at_is_the_exports_later_word(db, bucket, run_import):
    """Decided (docs/implementation.md): the export rewrote the file for the same moment, so its rows replace the
    stored ones even where a row moved to an earlier line."""
    key = changes("inc", "2026-11-20T06-20-00")
    bucket.put(key, change_file(ticket_row("INC000000000002", "2026-11-20 06:00:00"),
                                ticket_row(TICKET, "2026-11-20 06:10:00", status="Assigned")))
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    bucket.put(key, change_file(ticket_row(TICKET, "2026-11-20 06:10:00", status="Pending")))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert stored_status(db) == "PENDING"
    # Applying the same bytes again (--reseed) changes nothing.
    bucket.put(key, change_file(ticket_row(TICKET, "2026-11-20 06:10:00", status="Pending")))
    again = run_import("inc", "--from-bucket", "--apply", "--reseed")
    assert "0 updated" in again.out and stored_status(db) == "PENDING"


def test_a_typed_field_is_stored_trimmed(db, bucket, run_import):
    row = ticket_row(TICKET, " 2026-11-20 06:10:00 ")
    put(bucket, "2026-11-20T06-20-00", row)
    assert HEADER.startswith("ticket_id")

    assert run_import("inc", "--from-bucket", "--apply").code == 0

    assert db.scalar("SELECT raw->>'source_updated_at' FROM tickets.inc") == "2026-11-20 06:10:00"


@pytest.mark.parametrize("digits", [7, 9])
def test_a_time_with_more_digits_than_microseconds_orders_its_versions(db, bucket, run_import, digits):
    """SQL Server's datetime2 writes 7 fractional digits. Read as unparseable, both versions of one file were
    ordered by the file's time and the later row won, though its time is an hour older; a later file's real
    update was then dropped as stale."""
    newer, older = f"2026-11-20 05:00:00.{'1' * digits}", f"2026-11-20 04:00:00.{'0' * digits}"
    files = [put(bucket, "2026-12-04T06-00-00", ticket_row(TICKET, newer, status="Assigned"),
                 ticket_row(TICKET, older, status="New"))]
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert stored_status(db) == "ASSIGNED"
    assert db.scalar("SELECT source_updated_at = version_at FROM tickets.inc") is True

    files.append(put(bucket, "2026-12-05T06-00-00", ticket_row(TICKET, "2026-11-21 10:00:00", status="Resolved")))
    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert stored_status(db) == "RESOLVED"
    assert table_state(db, "inc") == reference_state(files, "INC")
