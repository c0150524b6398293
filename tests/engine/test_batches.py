"""Several waiting files in one transaction: each ticket written once, and one bad file never takes the rest down."""

from __future__ import annotations

import random
import string

from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import changes, csv_text, ticket_fields


def put_files(bucket, contents: list[str]) -> list[tuple[str, bytes]]:
    named = []
    for index, content in enumerate(contents):
        name = f"2026-11-20T06-{10 * index:02d}-00.csv"
        bucket.put(changes("inc", name[:-4]), content)
        named.append((name, content.encode()))
    return named


def test_a_batch_writes_each_ticket_once_and_records_every_file(db, bucket, run_import):
    # The same three tickets in four files: twelve versions, three rows written.
    named = put_files(bucket, [csv_text([ticket_fields(f"INC00000000000{t}", f"2026-11-20 06:{f:02d}:00",
                                                       raw_status=f"V{f}") for t in range(3)]) for f in range(4)])

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert table_state(db, "inc") == reference_state(named, "INC")
    assert "a batch of 4 files in one transaction: 12 rows, 3 new, 0 updated, 0 stale; folded 9 duplicates" \
        in outcome.out
    assert db.query("SELECT files, rows_staged, inserted, duplicates FROM tickets.ingest_batches") == [(4, 12, 3, 9)]
    files = db.query("SELECT rows_read, inserted, batch_id IS NOT NULL FROM tickets.ingest_files ORDER BY key")
    assert files == [(3, None, True)] * 4  # ticket counts belong to the batch, not to one of its files
    assert db.query("SELECT batches, rows_inserted FROM tickets.ingest_runs") == [(1, 3)]
    assert bucket.keys("automations/inc/changes/") == []


def test_a_file_alone_keeps_its_ticket_counts(db, bucket, run_import):
    put_files(bucket, [csv_text([ticket_fields("INC000000000001")])])
    assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert db.query("SELECT inserted, updated, stale, duplicates FROM tickets.ingest_files") == [(1, 0, 0, 0)]


def test_a_poison_row_and_a_contract_rejected_file_leave_the_rest_of_the_batch_applied(db, bucket, run_import):
    noise = "".join(random.Random(7).choices(string.ascii_letters, k=10_000))  # over the btree row limit
    contents = [
        csv_text([ticket_fields("INC000000000001")]),
        csv_text([ticket_fields("INC000000000002", cluster=noise), ticket_fields("INC000000000003")]),
        "id,status\nINC000000000004,New\n",
        csv_text([ticket_fields("INC000000000005")]),
    ]
    put_files(bucket, contents)

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 1  # a kept row and a rejected file are reported
    assert {t for (t,) in db.query("SELECT ticket_id FROM tickets.inc")} == {
        "INC000000000001", "INC000000000003", "INC000000000005"}
    assert db.query("SELECT line, left(reason, 31) FROM tickets.rejected_rows") == [
        (2, "the database refused this row: ")]
    assert "a batch of 3 files in one transaction" in outcome.out
    rejected = "automations/inc/rejected/2026-11-20T06-20-00.csv"
    assert bucket.keys("automations/inc/rejected/") == [rejected, rejected + ".error.txt"]
    assert len(bucket.keys("automations/inc/processed/")) == 3
    assert bucket.keys("automations/inc/changes/") == []


def test_a_batch_refused_as_a_whole_is_applied_file_by_file(db, bucket, run_import):
    """A rule that no single row breaks (here: at most three new tickets per statement) cannot be pinned to a
    row; the batch is split and each file applied alone."""
    db.execute("""
        CREATE FUNCTION tickets.test_at_most_three() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT count(*) FROM new_rows) > 3 THEN
                RAISE EXCEPTION 'more than three new tickets at once' USING ERRCODE = 'invalid_parameter_value';
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER test_at_most_three AFTER INSERT ON tickets.inc REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION tickets.test_at_most_three();""")
    named = put_files(bucket, [csv_text([ticket_fields(f"INC0000000000{f}{t}") for t in range(2)])
                               for f in range(3)])

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert "applying its files one by one" in outcome.err
    assert table_state(db, "inc") == reference_state(named, "INC")
    assert db.query("SELECT files FROM tickets.ingest_batches ORDER BY batch_id") == [(1,), (1,), (1,)]
    assert bucket.keys("automations/inc/changes/") == []


def test_batches_take_at_most_the_configured_files(db, bucket, run_import, monkeypatch):
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", "2")
    named = put_files(bucket, [csv_text([ticket_fields(f"INC00000000000{f}")]) for f in range(5)])

    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0
    assert db.query("SELECT files FROM tickets.ingest_batches ORDER BY batch_id") == [(2,), (2,), (1,)]
    assert table_state(db, "inc") == reference_state(named, "INC")
    status = run_import("inc", "--status")
    assert "3 batches" in status.out


def test_a_transient_refusal_leaves_the_whole_batch_for_the_next_run(db, bucket, run_import):
    db.execute("""
        CREATE FUNCTION tickets.test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'deadlock detected (staged by the test)' USING ERRCODE = 'deadlock_detected';
        END $$;
        CREATE TRIGGER test_deadlock BEFORE INSERT ON tickets.inc FOR EACH STATEMENT
            EXECUTE FUNCTION tickets.test_deadlock();""")
    named = put_files(bucket, [csv_text([ticket_fields(f"INC00000000000{f}")]) for f in range(2)]
                      + ["id,status\nINC000000000009,New\n"])

    first = run_import("inc", "--from-bucket", "--apply")

    assert first.code == 1
    assert first.err.count("stays in changes/ for the next run") == 2
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE status = 'applied'") == 0
    assert bucket.keys("automations/inc/rejected/")  # the contract-rejected file is still quarantined
    db.execute("DROP TRIGGER test_deadlock ON tickets.inc")

    again = run_import("inc", "--from-bucket", "--apply")

    assert again.code == 0, again.output
    assert table_state(db, "inc") == reference_state(named[:2], "INC")
    assert bucket.keys("automations/inc/changes/") == []
