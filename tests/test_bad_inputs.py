"""The bad-input catalogue: each case is one file in the stream between two good files.

Every case says what must happen to it — applied (with which rows), a row
kept in tickets.rejected_rows, the whole file moved to rejected/ with its
reason, left in changes/ for the next run, or ignored as not a change file —
and in every case the good files around it apply and nothing is lost.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conftest import TestDatabase
from netproxy import Proxy
from streamdata import COLUMNS, changes, csv_text, ticket_fields

BEFORE_KEY = changes("inc", "2026-11-20T06-00-00")
CASE_KEY = changes("inc", "2026-11-20T06-10-00")
AFTER_KEY = changes("inc", "2026-11-20T06-20-00")
GOOD = {"INC000000000001", "INC000000000002"}


def one(ticket_id: str = "INC000000000100", **overrides: str) -> dict[str, str]:
    return ticket_fields(ticket_id, **overrides)


def raw(db: TestDatabase, ticket_id: str) -> dict:
    return db.scalar("SELECT raw FROM tickets.inc WHERE ticket_id = %s", (ticket_id,))


@dataclass
class Case:
    id: str
    content: bytes
    outcome: str
    """applied | row-rejected | file-rejected | left-in-changes | ignored"""
    tickets: set[str] = frozenset()
    """Tickets the case file must add."""
    reason: str = ""
    check: Callable[[TestDatabase], None] | None = None
    key: str = CASE_KEY


def _check_bom(db):
    keys = set(raw(db, "INC000000000100"))
    assert "ticket_id" in keys and not any("\ufeff" in key for key in keys)


def _check_crlf(db):
    assert raw(db, "INC000000000100")["is_auto_closed"] == "false"
    assert not any("\r" in (v or "") for v in raw(db, "INC000000000100").values())


def _check_quoted(db):
    assert raw(db, "INC000000000100")["location_name"] == 'Yaya Court,\nBlock B, "Gate 2"'


def _check_reordered(db):
    assert db.query("SELECT region, raw_status, closed_at IS NOT NULL FROM tickets.inc "
                    "WHERE ticket_id = 'INC000000000100'") == [("nairobi", "CLOSED", True)]


def _check_extra(db):
    assert raw(db, "INC000000000100")["priority"] == "P1"


def _check_duplicate(db):
    assert raw(db, "INC000000000100")["raw_status"] == "NEWEST"


def _check_timestamps(db):
    assert db.query("SELECT closed_at, source_updated_at, raw->>'closed_at' FROM tickets.inc "
                    "WHERE ticket_id = 'INC000000000100'") == [(None, None, "31/12/2026 10:00")]


def _check_zero_coordinates(db):
    assert db.query("SELECT latitude, longitude, geo_source FROM tickets.inc WHERE ticket_id = 'INC000000000100'"
                    ) == [(None, None, None)]


def _check_big_field(db):
    assert db.scalar("SELECT length(location_name) FROM tickets.inc WHERE ticket_id = 'INC000000000100'") == 1 << 20


ALARMS = ["true", "True", "TRUE", "t", "1"]
NOT_ALARMS = ["false", "FALSE", "f", "0", ""]

CASES = [
    Case("zero-bytes", b"", "applied"),
    Case("header-only", csv_text([]).encode(), "applied"),
    Case("utf8-bom", codecs.BOM_UTF8 + csv_text([one()]).encode(), "applied", {"INC000000000100"}, check=_check_bom),
    Case("latin-1", csv_text([one(location_name="Caf\xe9 Court")]).encode("latin-1"), "file-rejected",
         reason="line 2: not UTF-8: byte 0xe9"),
    Case("crlf", csv_text([one()], newline="\r\n").encode(), "applied", {"INC000000000100"}, check=_check_crlf),
    Case("quoted-newlines-and-commas", csv_text([one(location_name='Yaya Court,\nBlock B, "Gate 2"'),
                                                 one("INC000000000101")]).encode(),
         "applied", {"INC000000000100", "INC000000000101"}, check=_check_quoted),
    Case("unterminated-quote", (csv_text([one()]) + 'INC000000000101,"In Progress\n' + csv_text([one()])).encode(),
         "file-rejected", reason="line 3: broken quoting in the record starting on this line"),
    Case("more-fields-than-header", (csv_text([one()]) + csv_text([one("INC000000000101")]).splitlines()[1]
                                     + ",surplus\n").encode(),
         "row-rejected", {"INC000000000100"}, reason="33 fields where the header has 32"),
    Case("fewer-fields", (csv_text([one()]) + "INC000000000101,New,new\n").encode(),
         "row-rejected", {"INC000000000100"}, reason="3 fields where the header has 32"),
    Case("no-ticket_id-column", csv_text([one()], columns=["id", *COLUMNS[1:]]).encode(), "file-rejected",
         reason="line 1: no ticket_id column in the header"),
    Case("columns-reordered", csv_text([one(raw_status=" closed ", closed_at="2026-11-20 06:05:00")],
                                       columns=list(reversed(COLUMNS))).encode(),
         "applied", {"INC000000000100"}, check=_check_reordered),
    Case("unknown-extra-column", csv_text([{**one(), "priority": "P1"}], columns=[*COLUMNS, "priority"]).encode(),
         "applied", {"INC000000000100"}, check=_check_extra),
    Case("duplicate-ticket-older-row-last", csv_text([
        one(raw_status="Newest", source_updated_at="2026-11-20 06:09:00"),
        one(raw_status="Older", source_updated_at="2026-11-20 06:01:00")]).encode(),
        "applied", {"INC000000000100"}, check=_check_duplicate),
    Case("sentinel-mid-file-and-at-end", csv_text([
        one(), {"ticket_id": "EXPORT STOPPED: row limit reached"}, one("INC000000000101"),
        {"ticket_id": "EXPORT STOPPED: row limit reached"}]).encode(),
        "applied", {"INC000000000100", "INC000000000101"}),
    Case("alarm-rows-in-every-spelling", csv_text(
        [one(f"INC00000000020{i}", is_alarm=flag) for i, flag in enumerate(ALARMS)]
        + [one(f"INC00000000030{i}", is_alarm=flag) for i, flag in enumerate(NOT_ALARMS)]).encode(),
        "applied", {f"INC00000000030{i}" for i in range(len(NOT_ALARMS))}),
    Case("unparseable-timestamps", csv_text([one(closed_at="31/12/2026 10:00", source_updated_at="soon")]).encode(),
         "applied", {"INC000000000100"}, check=_check_timestamps),
    Case("zero-coordinates", csv_text([one(latitude="0", longitude="0")]).encode(), "applied", {"INC000000000100"},
         check=_check_zero_coordinates),
    Case("one-megabyte-field", csv_text([one(location_name="x" * (1 << 20))]).encode(), "applied",
         {"INC000000000100"}, check=_check_big_field),
    Case("field-over-the-8-MiB-ceiling", csv_text([one(location_name="x" * (9 << 20))]).encode(), "file-rejected",
         reason="line 2: a field longer than 8 MiB"),
    Case("truncated-object-claiming-2-GB", csv_text([one()] * 50).encode(), "left-in-changes",
         reason="reading automations/inc/changes/2026-11-20T06-10-00.csv"),
    Case("key-not-matching-the-pattern", csv_text([one()]).encode(), "ignored",
         key="automations/inc/changes/2026-11-20.csv"),
    Case("key-with-dot-dot", csv_text([one()]).encode(), "ignored",
         key="automations/inc/changes/../changes/2026-11-20T06-10-00.csv"),
    Case("key-with-spaces", csv_text([one()]).encode(), "ignored",
         key="automations/inc/changes/2026-11-20T06-10-00 copy.csv"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_among_good_files(db, bucket, s3_server, run_import, monkeypatch, case):
    bucket.put(BEFORE_KEY, csv_text([ticket_fields("INC000000000001", "2026-11-20 06:00:00")]))
    bucket.put(case.key, case.content)
    bucket.put(AFTER_KEY, csv_text([ticket_fields("INC000000000002", "2026-11-20 06:20:00")]))
    proxy = None
    if case.outcome == "left-in-changes":
        proxy = Proxy(int(s3_server.rsplit(":", 1)[1]), inflate_content_length_for=CASE_KEY).start()
        monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setattr("pipeline.time.sleep", lambda _s: None)
    try:
        outcome = run_import("inc", "--from-bucket", "--apply")
    finally:
        if proxy:
            proxy.stop()

    tickets = {ticket_id for (ticket_id,) in db.query("SELECT ticket_id FROM tickets.inc")}
    assert tickets == GOOD | set(case.tickets), outcome.output
    assert bucket.get(BEFORE_KEY.replace("changes", "processed"))
    assert bucket.get(AFTER_KEY.replace("changes", "processed"))
    name = case.key.rsplit("/", 1)[1]
    if case.outcome == "applied":
        assert outcome.code == 0, outcome.output
        assert bucket.get(f"automations/inc/processed/{name}") == case.content
    elif case.outcome == "row-rejected":
        assert outcome.code == 1
        assert [reason for (reason,) in db.query("SELECT reason FROM tickets.rejected_rows")] == [case.reason]
        assert bucket.get(f"automations/inc/processed/{name}") == case.content
    elif case.outcome == "file-rejected":
        assert outcome.code == 1
        assert case.reason in outcome.err
        assert bucket.get(f"automations/inc/rejected/{name}") == case.content
        assert case.reason in bucket.get(f"automations/inc/rejected/{name}.error.txt").decode()
    elif case.outcome == "left-in-changes":
        assert outcome.code == 1
        assert case.reason in outcome.err
        assert bucket.get(case.key) == case.content
        assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE key = %s", (case.key,)) == 0
    else:
        assert outcome.code == 0
        assert f"ignoring {case.key!r}" in outcome.err
        assert bucket.get(case.key) == case.content
    if case.check:
        case.check(db)
    leftover = set(bucket.keys("automations/inc/changes/"))
    assert leftover == ({case.key} if case.outcome in {"left-in-changes", "ignored"} else set())
