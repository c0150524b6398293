"""SIGKILL at every step of a run, then a rerun: the reference state, every file in one place, none re-applied."""

from __future__ import annotations

import pytest

from fleettickets import faults
from support.matrix import each_point_once
from support.oracle import reference_state
from support.stack import table_state
from support.streamdata import run_subprocess, sample_files


def placement(bucket, names: list[str]) -> dict[str, set[str]]:
    """For every file name, the folders it is in."""
    where: dict[str, set[str]] = {name: set() for name in names}
    for key in bucket.keys("automations/inc/"):
        folder, name = key.split("/")[-2:]
        if name in where:
            where[name].add(folder)
    return where


@pytest.mark.parametrize(("point", "batch_files"), each_point_once(
    sorted(faults.FAULT_POINTS), [("alone", (1,)), ("batches-of-2", (2,)), ("one-batch", (20,))]))
def test_killed_at_any_step_the_rerun_reaches_the_reference_state(db, bucket, monkeypatch, point, batch_files):
    """Each file alone, in batches of 2 (3 files: a batch of two, then one), or all in one batch."""
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", str(batch_files))
    bucket.put_samples("inc")
    names = [name for name, _ in sample_files("inc")]

    killed = run_subprocess("inc.import_inc", "--from-bucket", "--apply", fault=point)

    assert killed.returncode == -9, killed.stdout + killed.stderr
    after_crash = placement(bucket, names)
    assert all(folders for folders in after_crash.values()), f"a file vanished: {after_crash}"
    assert all(folders <= {"changes", "processed"} for folders in after_crash.values())
    committed = dict(db.query("SELECT key, applied_at FROM tickets.ingest_files"))
    # What committed is whole batches: the files of a batch are recorded together or not at all.
    assert len(committed) % min(batch_files, len(names)) == 0 or len(committed) == len(names)
    assert db.scalar("SELECT count(*) FROM tickets.closure_events") == 0  # post-apply never committed

    rerun = run_subprocess("inc.import_inc", "--from-bucket", "--apply")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    assert placement(bucket, names) == {name: {"processed"} for name in names}
    ledger = db.query("SELECT key, applied_at, moved_at IS NOT NULL FROM tickets.ingest_files ORDER BY key")
    assert [key for key, *_ in ledger] == [f"automations/inc/changes/{name}" for name in names]  # each once
    assert all(archived for *_, archived in ledger)
    for key, applied_at, _ in ledger:  # committed before the kill: archived, never applied again
        if key in committed:
            assert applied_at == committed[key]
    reference = reference_state(sample_files("inc"), "INC")
    closed = sorted(t for t, row in reference.items() if row["bucket"] == "closed" and row["closed_at"])
    assert [t for (t,) in db.query("SELECT ticket_id FROM tickets.closure_events ORDER BY 1")] == closed
    assert db.scalar("SELECT max(metadata->>'source_max_key') FROM tickets.import_meta") == \
        f"automations/inc/changes/{names[-1]}"


def test_the_fault_hook_is_inert_without_its_variable(db, bucket, monkeypatch):
    monkeypatch.delenv("FLEETTICKETS_FAULT", raising=False)
    bucket.put_samples("inc")
    assert run_subprocess("inc.import_inc", "--from-bucket", "--apply").returncode == 0
    assert run_subprocess("inc.import_inc", "--from-bucket", "--apply", fault="no_such_point").returncode == 0
