"""The bad-input catalogue: each case is one file in the stream between two good files.

Every case says what must happen to it — applied (with which rows), a row
kept in tickets.rejected_rows, the whole file moved to rejected/ with its
reason, left in changes/ for the next run, or ignored as not a change file —
and in every case the good files around it apply and nothing is lost.
"""

from __future__ import annotations

import codecs
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from fleettickets import clock
from support.netproxy import Proxy
from support.stack import TestDatabase
from support.streamdata import COLUMNS, changes, csv_text, ticket_fields

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
    env: dict[str, str] = field(default_factory=dict)


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


def _blank_lines(count: int) -> Callable[[TestDatabase], None]:
    def check(db):
        assert db.scalar("SELECT blank_lines FROM tickets.ingest_files WHERE key = %s", (CASE_KEY,)) == count
    return check


def _check_nul_kept_storable(db):
    (raw_text,) = db.query("SELECT raw_text FROM tickets.rejected_rows")[0]
    assert "Yaya\\x00Court" in raw_text and "\x00" not in raw_text


def _noise(length: int) -> str:
    # Random letters: a repeated character would compress under the index row limit.
    return "".join(random.Random(length).choices(string.ascii_letters, k=length))


GOOD_ROWS = [one("INC000000000101"), one("INC000000000102")]
ARABIC_INDIC_STAMP = "٢٠٢٦-١١-٢٠T٠٦-١٠-٠٠"

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
    Case("key-with-non-ascii-digits", csv_text([one()]).encode(), "ignored",
         key=f"automations/inc/changes/{ARABIC_INDIC_STAMP}.csv"),
    # A blank first line once read as "no header": the file was archived with its rows lost.
    Case("blank-line-before-the-header", b"\n" + csv_text([one()]).encode(), "applied", {"INC000000000100"},
         check=_blank_lines(1)),
    Case("bom-then-crlf-blank-line-before-the-header",
         codecs.BOM_UTF8 + b"\r\n" + csv_text([one()], newline="\r\n").encode(), "applied", {"INC000000000100"},
         check=_blank_lines(1)),
    Case("blank-and-whitespace-lines-between-records",
         csv_text([one()]).encode() + b"\n  \r\n\t\n" + csv_text(GOOD_ROWS).split("\n", 1)[1].encode() + b"\n\n",
         "applied", {"INC000000000100", "INC000000000101", "INC000000000102"}, check=_blank_lines(5)),
    Case("only-blank-lines", b"\n \r\n\n", "applied", check=_blank_lines(3)),
    # One NUL byte once failed the COPY of the whole file, on every run.
    Case("nul-byte-in-a-field", csv_text([one(location_name="Yaya\x00Court"), *GOOD_ROWS]).encode(), "row-rejected",
         {"INC000000000101", "INC000000000102"}, reason="NUL character in a field", check=_check_nul_kept_storable),
    Case("nul-byte-in-the-ticket_id", csv_text([one("INC0000\x0000000100"), *GOOD_ROWS]).encode(), "row-rejected",
         {"INC000000000101", "INC000000000102"}, reason="is not INC + 12 digits"),
    Case("nul-byte-in-the-header", csv_text([one()], columns=[*COLUMNS[:-1], "source\x00type"]).encode(),
         "file-rejected", reason="line 1: NUL character in the header"),
    Case("cluster-over-the-index-row-limit", csv_text([one(cluster=_noise(10_000)), *GOOD_ROWS]).encode(),
         "row-rejected", {"INC000000000101", "INC000000000102"},
         reason="the database refused this row: index row requires"),
    Case("header-of-40000-columns", csv_text([], columns=[*COLUMNS, *(f"c{i}" for i in range(40_000))]).encode(),
         "file-rejected", reason="line 1: a header longer than 64 KiB"),
    Case("header-of-1001-columns", csv_text([], columns=[*COLUMNS, *(f"c{i}" for i in range(1001 - 32))]).encode(),
         "file-rejected", reason="line 1: 1001 columns in the header, over the limit of 1000"),
    Case("record-of-four-6-MiB-fields", csv_text([one(), one("INC000000000101", **{
        name: "line\n" * ((6 << 20) // 5) for name in ("location_name", "assigned_team", "owner", "sla_status")})]
    ).encode(), "file-rejected", reason="line 3: a record longer than 16 MiB"),
    Case("object-over-the-size-limit", csv_text([one()] * 20).encode(), "file-rejected",
         reason="bytes, over the limit of 2000 bytes for one file: raise FLEETTICKETS_MAX_OBJECT_BYTES",
         env={"FLEETTICKETS_MAX_OBJECT_BYTES": "2000"}),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_among_good_files(db, bucket, s3_server, run_import, monkeypatch, case):
    bucket.put(BEFORE_KEY, csv_text([ticket_fields("INC000000000001", "2026-11-20 06:00:00")]))
    bucket.put(case.key, case.content)
    bucket.put(AFTER_KEY, csv_text([ticket_fields("INC000000000002", "2026-11-20 06:20:00")]))
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    proxy = None
    if case.outcome == "left-in-changes":
        proxy = Proxy(int(s3_server.rsplit(":", 1)[1]), inflate_content_length_for=CASE_KEY).start()
        monkeypatch.setenv("RUSTFS_ENDPOINT", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.setattr(clock, "sleep", lambda _s: None)
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
        reasons = [reason for (reason,) in db.query("SELECT reason FROM tickets.rejected_rows")]
        assert len(reasons) == 1 and case.reason in reasons[0], reasons
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
