"""run_ingest.sh, the plain-host runner: both imports, one copy at a time, a failure shows in the exit code."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "FLEETTICKETS_LOCK_DIR": str(tmp_path),
           "FLEETTICKETS_ENV_FILE": str(tmp_path / "run.env"), **extra}
    return subprocess.run(["bash", str(ROOT / "run_ingest.sh")], env=env, capture_output=True, text=True,
                          timeout=120)


def test_it_runs_inc_then_crq(db, bucket, tmp_path):
    bucket.put_samples("inc")
    bucket.put_samples("crq")

    result = run_script(tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.index("inc: done") < result.stdout.index("crq: done")
    assert bucket.keys("automations/inc/changes/") == bucket.keys("automations/crq/changes/") == []


def test_a_second_copy_does_nothing_while_one_runs(db, bucket, tmp_path):
    bucket.put_samples("inc")
    with (tmp_path / "fleettickets-run_ingest.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_script(tmp_path)

    assert result.returncode == 0
    assert "another copy is running" in result.stdout
    assert len(bucket.keys("automations/inc/changes/")) == 3


def test_it_loads_the_env_file(db, bucket, tmp_path):
    bucket.put_samples("crq")
    (tmp_path / "run.env").write_text("RUSTFS_BUCKET=other-bucket\n")
    result = run_script(tmp_path)
    assert result.returncode == 1
    assert "bucket other-bucket" in result.stderr


def test_a_failing_import_makes_it_exit_non_zero_and_crq_still_runs(db, bucket, tmp_path):
    bucket.put_samples("crq")
    bucket.put("automations/inc/changes/2026-11-20T06-00-00.csv", b"not,a,change,file\n")

    result = run_script(tmp_path)

    assert result.returncode == 1
    assert "no ticket_id column" in result.stderr
    assert bucket.keys("automations/crq/changes/") == []


def test_the_env_file_is_read_literally_never_executed(db, bucket, tmp_path):
    bucket.put_samples("crq")
    marker = tmp_path / "executed"
    (tmp_path / "run.env").write_text(
        "# a comment\n"
        f"X=$(touch {marker})\n"
        f"Y=`touch {marker}`\n"
        "export RUSTFS_REGION='us-east-1'\n"
        'RUSTFS_BUCKET="pa$$w0rd-${HOME}-bucket"\r\n')

    result = run_script(tmp_path)

    assert not marker.exists()
    assert result.returncode == 1
    assert "bucket pa$$w0rd-${HOME}-bucket" in result.stderr  # passed through as written


def test_without_a_writable_lock_directory_it_says_which_variable_to_set(db, bucket, tmp_path):
    result = run_script(tmp_path, FLEETTICKETS_LOCK_DIR=str(tmp_path / "missing"))
    assert result.returncode == 1
    assert "set FLEETTICKETS_LOCK_DIR" in result.stderr
