"""Advice that works when followed: each recovery an error message or the runbook gives, done literally, applies the
file, and --check is healthy again afterwards."""

from __future__ import annotations

from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import change_file, changes, stamp_ago, ticket_row

REJECTED = "automations/inc/rejected/"




def check(run_import) -> str:
    outcome = run_import("inc", "--check")
    return outcome.out


def test_raise_the_size_limit_then_copy_the_file_back_as_the_error_says(db, bucket, run_import, monkeypatch):
    stamp = stamp_ago(5)
    content = change_file(*(ticket_row(f"INC{n:012d}", "2026-11-20 06:00:00") for n in range(40)))
    bucket.put(changes("inc", stamp), content)
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", "2000")
    rejected = run_import("inc", "--from-bucket", "--apply")
    assert rejected.code == 1
    assert ("raise FLEETTICKETS_MAX_OBJECT_BYTES, then copy it from rejected/ back to changes/ under the same name"
            in rejected.err)
    assert "1 files wait in automations/inc/rejected/" in check(run_import)

    # As it says: raise the limit, copy the file back under the same name, and let the next run come.
    monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", "10000000")
    bucket.client.copy_object(Bucket=bucket.name, Key=changes("inc", stamp),
                              CopySource={"Bucket": bucket.name, "Key": f"{REJECTED}{stamp}.csv"})
    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert "was rejected before and has been put back in changes/: trying it again" in outcome.err
    assert "1 files applied, 1 archived" in outcome.out
    assert table_state(db, "inc") == reference_state([(f"{stamp}.csv", content.encode())], "INC")
    assert bucket.keys("automations/inc/changes/") == []
    assert check(run_import).startswith("inc: healthy")


def test_fix_the_file_and_put_it_back_under_the_same_name_as_the_runbook_says(db, bucket, run_import):
    stamp = stamp_ago(5)
    bucket.put(changes("inc", stamp), "id,cluster\nINC000000000001,Kilimani\n")
    assert run_import("inc", "--from-bucket", "--apply").code == 1
    assert "no ticket_id column" in bucket.get(f"{REJECTED}{stamp}.csv.error.txt").decode()

    corrected = change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00"))
    bucket.put(changes("inc", stamp), corrected)
    outcome = run_import("inc", "--from-bucket", "--apply")

    assert outcome.code == 0, outcome.output
    assert table_state(db, "inc") == reference_state([(f"{stamp}.csv", corrected.encode())], "INC")
    assert check(run_import).startswith("inc: healthy")
    # The rejected copy stays as the record of what arrived; the runbook says the corrected one is archived beside.
    assert f"{REJECTED}{stamp}.csv" in bucket.keys(REJECTED)
    assert [key for key in bucket.keys("automations/inc/processed/") if key.startswith(
        f"automations/inc/processed/{stamp}.")]


def test_a_file_put_back_unchanged_is_rejected_again_once_and_stays_a_problem(db, bucket, run_import):
    stamp = stamp_ago(5)
    bucket.put(changes("inc", stamp), "id,cluster\nINC000000000001,Kilimani\n")
    assert run_import("inc", "--from-bucket", "--apply").code == 1
    bucket.client.copy_object(Bucket=bucket.name, Key=changes("inc", stamp),
                              CopySource={"Bucket": bucket.name, "Key": f"{REJECTED}{stamp}.csv"})

    again = run_import("inc", "--from-bucket", "--apply")
    after = run_import("inc", "--from-bucket", "--apply")

    assert again.code == 1 and "no ticket_id column" in again.err
    assert after.code == 0 and "nothing new" in after.out  # moved already: nothing bounces run after run
    assert bucket.keys("automations/inc/changes/") == []
    assert "1 files wait in automations/inc/rejected/" in check(run_import)
