"""SIGTERM and SIGHUP (docker stop, systemd, a cron timeout, a closed terminal) end a run as Ctrl-C does: one line, a
documented exit code, the run's log row closed saying why, everything committed kept; the next run converges."""

from __future__ import annotations

import signal

import pytest

from fleettickets import faults
from support.matrix import each_point_once
from support.oracle import reference_state
from support.processes import finish, wait_until_stopped
from support.stack import table_state
from support.streamdata import run_subprocess, sample_files


@pytest.mark.parametrize(("point", "signum", "code"), each_point_once(
    sorted(faults.FAULT_POINTS), [("TERM", (signal.SIGTERM, 143)), ("HUP", (signal.SIGHUP, 129))]))
def test_a_signal_at_any_step_ends_the_run_in_one_line_with_its_row_closed(db, bucket, ingests, monkeypatch, point,
                                                                          signum, code):
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", "1")
    bucket.put_samples("inc")
    process = ingests.start(fault=f"{point}:stop")
    wait_until_stopped(process)
    process.send_signal(signum)  # pending while the process is frozen: delivered at the step itself
    process.send_signal(signal.SIGCONT)

    returncode, out, err = finish(process)

    name = signal.Signals(signum).name
    assert returncode == code, out + err
    assert err.splitlines() == [f"inc: error: terminated by {name}; every file committed so far stays applied"], err
    assert db.scalar("SELECT count(*) FROM tickets.ingest_runs WHERE finished_at IS NULL") == 0
    if point != "mid_post_apply":  # the post-apply step runs after the run's row is closed as it ended
        assert db.query("SELECT status, error FROM tickets.ingest_runs") in ([], [("failed", f"Terminated: {name}")])

    rerun = run_subprocess("inc.import_inc", "--from-bucket", "--apply")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert table_state(db, "inc") == reference_state(sample_files("inc"), "INC")
    assert bucket.keys("automations/inc/changes/") == []
