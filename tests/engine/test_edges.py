"""The edges where "nothing lost" once broke: a key rewritten mid-run, a poison row, cluster names with spaces,
limits that bound time and memory, and the reader's own accounting."""

from __future__ import annotations

import io
import re
import signal
import time

import psycopg
import pytest

from fleettickets import database
from fleettickets.changefile import ChangeFile, RejectedFile
from inc import import_inc
from support.processes import finish, wait_until_stopped
from support.streamdata import COLUMNS, changes, csv_text, ticket_fields

KEY = changes("inc", "2026-11-20T06-00-00")


def rewrite_while_stopped(ingests, fault: str, rewrite) -> tuple[int, str, str]:
    """Run the ingest frozen at `fault`, call rewrite(), let it go on."""
    process = ingests.start(fault=f"{fault}:stop")
    wait_until_stopped(process)
    rewrite()
    process.send_signal(signal.SIGCONT)
    return finish(process)


def version(status: str, updated: str) -> str:
    return csv_text([ticket_fields("INC000000000001", updated, raw_status=status)])


# -- a key the export rewrites while a run applies it ---------------------------------------------------------

@pytest.mark.parametrize("moment", ["after_list", "after_commit", "after_copy_object"])
def test_a_key_rewritten_mid_run_is_left_in_changes_and_applied_next_run(ingests, db, bucket, moment):
    first, second = version("First", "2026-11-20 06:00:00"), version("Rewritten", "2026-11-20 06:05:00")
    bucket.put(KEY, first)

    code, _out, err = rewrite_while_stopped(ingests, moment, lambda: bucket.put(KEY, second))

    assert code == 0, err
    assert f"{KEY} was rewritten by the export during this run" in err
    assert "left in changes/, the next run applies the new version" in err
    assert bucket.get(KEY) == second.encode()  # the new version was neither moved nor deleted
    assert all(bucket.get(key) != second.encode() for key in bucket.keys("automations/inc/processed/"))

    code, _out, err = finish(ingests.start())

    assert code == 0, err
    assert db.scalar("SELECT raw_status FROM tickets.inc") == "REWRITTEN"
    assert bucket.keys("automations/inc/changes/") == []
    assert second.encode() in [bucket.get(key) for key in bucket.keys("automations/inc/processed/")]
    if moment != "after_list":  # the first version was applied, and its copy is kept where it was archived
        assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE status = 'applied'") == 2


def test_a_key_rewritten_before_its_rejection_is_moved_stays_for_the_next_run(ingests, db, bucket):
    bad = "id,status\nINC000000000001,New\n"
    good = version("Good", "2026-11-20 06:05:00")
    bucket.put(KEY, bad)
    etag = bucket.client.head_object(Bucket=bucket.name, Key=KEY)["ETag"].strip('"')
    # A run that died after recording the rejection, before moving the file.
    db.execute("INSERT INTO tickets.ingest_files (dataset, key, etag, status, error) "
               "VALUES ('inc', %s, %s, 'rejected', 'line 1: no ticket_id column')", (KEY, etag))

    code, _out, err = rewrite_while_stopped(ingests, "after_list", lambda: bucket.put(KEY, good))

    assert code == 0, err
    assert "was rewritten by the export during this run" in err
    assert bucket.keys("automations/inc/rejected/") == []
    assert bucket.get(KEY) == good.encode()
    code, _out, err = finish(ingests.start())
    assert code == 0, err
    assert db.scalar("SELECT raw_status FROM tickets.inc") == "GOOD"


# -- a poison row ----------------------------------------------------------------------------------------------

def test_a_nul_byte_row_is_kept_the_good_rows_apply_and_the_next_run_has_nothing_to_do(db, bucket, run_import):
    rows = [ticket_fields(f"INC{n:012d}") for n in range(40)]
    rows.insert(17, ticket_fields("INC000000099999", owner="jw\x00anjiru"))
    bucket.put(KEY, csv_text(rows))

    first = run_import("inc", "--from-bucket", "--apply")

    assert first.code == 1  # a kept row is reported
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 40
    assert db.query("SELECT line, reason FROM tickets.rejected_rows") == [(19, "NUL character in a field")]
    assert "jw\\x00anjiru" in db.scalar("SELECT raw_text FROM tickets.rejected_rows")
    assert bucket.keys("automations/inc/changes/") == []
    again = run_import("inc", "--from-bucket", "--apply")
    assert again.code == 0 and "nothing new" in again.out


def test_rows_the_database_refuses_are_found_among_many_and_kept(db, bucket, run_import):
    """Three rows over the btree row limit among 300: bisection keeps exactly those three."""
    noise = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(4000))  # incompressible, ~12 kB
    bad = {7, 150, 299}
    rows = [ticket_fields(f"INC{n:012d}", cluster=noise if n in bad else "Karen") for n in range(300)]
    bucket.put(KEY, csv_text(rows))

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1
    kept = db.query("SELECT line, reason FROM tickets.rejected_rows ORDER BY line")
    assert [line for line, _ in kept] == [n + 2 for n in sorted(bad)]
    assert all(reason.startswith("the database refused this row: index row") for _, reason in kept)
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 297
    assert db.query("SELECT rows_read, rows_rejected, inserted FROM tickets.ingest_files") == [(300, 3, 297)]
    assert bucket.keys("automations/inc/changes/") == []


@pytest.mark.parametrize(("sqlstate", "refused"), [
    ("22021", True),   # character not in repertoire
    ("22P05", True),   # untranslatable character
    ("23514", True),   # check violation
    ("54000", True),   # program limit exceeded: index row too large
    ("40P01", False),  # deadlock
    ("40001", False),  # serialization failure
    ("55P03", False),  # lock not available
    ("57014", False),  # statement timeout
    ("57P01", False),  # admin shutdown
    ("08006", False),  # connection failure
    ("42P01", False),  # undefined table: the setup, not the file
    ("53100", False),  # disk full
])
def test_only_errors_the_same_bytes_would_meet_again_quarantine(db, sqlstate, refused):
    with db.connect() as conn, pytest.raises(psycopg.Error) as raised:
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '" + sqlstate + "'; END $$")
    assert raised.value.sqlstate == sqlstate
    assert database.refused_by_data(raised.value) is refused


# -- the reader's limits and accounting --------------------------------------------------------------------------

def read(content: bytes) -> ChangeFile:
    change_file = ChangeFile(io.BytesIO(content), "test.csv", re.compile(r"INC[0-9]{12}"), "INC + 12 digits")
    list(change_file.rows())
    return change_file


def test_a_header_of_40000_columns_is_rejected_in_well_under_a_second():
    content = csv_text([], columns=[*COLUMNS, *(f"extra_{n}" for n in range(40_000))]).encode()
    started = time.perf_counter()
    with pytest.raises(RejectedFile, match="line 1: a header longer than 64 KiB"):
        read(content)
    # The duplicate-name check once counted per column: 25 s for this header.
    assert time.perf_counter() - started < 1


def test_the_column_limit_is_checked_on_names_short_enough_to_pass_the_header_limit():
    many = [f"c{n}" for n in range(1000 - len(COLUMNS))]
    assert read(csv_text([ticket_fields("INC000000000001")], columns=[*COLUMNS, *many]).encode()).counts.staged == 1
    with pytest.raises(RejectedFile, match="1001 columns in the header, over the limit of 1000"):
        read(csv_text([], columns=[*COLUMNS, *many, "one_more"]).encode())


def test_a_column_named_twice_is_named_in_the_reason():
    with pytest.raises(RejectedFile, match="column named twice in the header: owner, region"):
        read(csv_text([], columns=[*COLUMNS, "region", "owner"]).encode())


def test_a_bom_after_blank_lines_still_opens_the_header():
    content = b"\r\n\xef\xbb\xbf" + csv_text([ticket_fields("INC000000000001")]).encode()
    assert read(content).counts.staged == 1


def test_every_record_is_in_exactly_one_count():
    rows = [ticket_fields("INC000000000001"), ticket_fields("INC000000000002", is_alarm="true"),
            {"ticket_id": "EXPORT STOPPED: row limit"}, ticket_fields("CRQ000000000003"),
            ticket_fields("INC000000000004")]
    counts = read(b"\n" + csv_text(rows).encode() + b"  \n").counts
    assert (counts.rows_read, counts.staged, counts.alarms_dropped, counts.sentinels, counts.rows_rejected,
            counts.blank_lines) == (5, 2, 1, 1, 1, 2)


def test_a_reader_that_stops_early_is_caught_by_the_accounting(monkeypatch):
    """The invariant is the engine's own: break the reader and it rejects the file instead of losing rows."""
    original = ChangeFile._read_records

    def loses_the_last_record(self, reader):
        records = list(original(self, reader))
        yield from records[:-1]
    monkeypatch.setattr(ChangeFile, "_read_records", loses_the_last_record)

    with pytest.raises(RejectedFile, match="records do not add up"):
        read(csv_text([ticket_fields("INC000000000001"), ticket_fields("INC000000000002")]).encode())


# -- cluster names as the feed writes them ------------------------------------------------------------------------

def test_an_alias_with_spaces_and_case_gets_its_canonical_name_everywhere(db, run_import, tmp_path):
    rows = [ticket_fields("INC000000000001", cluster=" QOA "), ticket_fields("INC000000000002", cluster="qoa\t"),
            ticket_fields("INC000000000003", cluster="Quarry Road"), ticket_fields("INC000000000004", cluster=" Karen"),
            ticket_fields("INC000000000005", cluster="Karen")]
    path = tmp_path / "2026-11-20T06-00-00.csv"
    path.write_text(csv_text(rows))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0

    assert dict(db.query("SELECT ticket_id, cluster_name FROM tickets.inc_open_sla")) == {
        "INC000000000001": "Quarry Road", "INC000000000002": "Quarry Road", "INC000000000003": "Quarry Road",
        "INC000000000004": "Karen", "INC000000000005": "Karen"}
    for wanted in ["QOA", " qoa", "Quarry Road", "quarry road "]:
        payload = db.scalar("SELECT reporting.fn_inc_dashboard(%s)", (wanted,))
        assert {f["id"] for f in payload["open"]["features"]} == {
            "INC000000000001", "INC000000000002", "INC000000000003"}, wanted
    snapshot = dict(db.query("SELECT cluster, open_backlog FROM tickets.inc_daily_snapshot WHERE cluster <> '(all)'"))
    assert snapshot == {"Quarry Road": 3, "Karen": 2}
    assert db.scalar("SELECT tickets.canonical_cluster(' qoa ')") == "Quarry Road"


def test_the_cli_key_pattern_takes_ascii_digits_only():
    pattern = import_inc.DATASET.key_pattern
    assert pattern.fullmatch("automations/inc/changes/2026-11-20T06-00-00.csv")
    assert not pattern.fullmatch("automations/inc/changes/２０２６-11-20T06-00-00.csv")
