"""run_ingest.sh, the plain-host runner: both imports, one copy at a time, a failure shows in the exit code."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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


# -- the lock: nobody else can hold it, plant it or make it truncate a file -------------------------------------

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="another local user is played by root switching to nobody")


def as_user(user: int, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command],
                          capture_output=True, text=True, timeout=30)


def cron_like(tmp_path: Path, home: Path) -> dict[str, str]:
    """What cron gives: no XDG_RUNTIME_DIR, no FLEETTICKETS_LOCK_DIR, a HOME."""
    env = {key: value for key, value in os.environ.items() if key not in ("XDG_RUNTIME_DIR", "FLEETTICKETS_LOCK_DIR")}
    return {**env, "HOME": str(home), "PYTHON": sys.executable, "FLEETTICKETS_ENV_FILE": str(tmp_path / "run.env")}


@pytest.fixture
def open_home():
    """A home every local user may walk through, as /home/<user> often is: only the lock directory's mode keeps
    another user out."""
    home = Path(tempfile.mkdtemp(prefix="fleettickets-home-"))
    os.chmod(home, 0o755)
    yield home
    shutil.rmtree(home)


@needs_root
def test_under_cron_the_lock_is_in_a_private_directory_that_another_user_cannot_enter(db, bucket, tmp_path,
                                                                                        open_home):
    bucket.put_samples("inc")
    # What another local user could do to the shared /run/lock: hold the old lock path forever.
    shared = Path("/run/lock/fleettickets-run_ingest.lock")
    held = shared.open("a") if shared.parent.is_dir() else None
    try:
        if held:
            fcntl.flock(held, fcntl.LOCK_EX)
        result = subprocess.run(["bash", str(ROOT / "run_ingest.sh")], env=cron_like(tmp_path, open_home),
                                capture_output=True,
                                text=True, timeout=120)
    finally:
        if held:
            held.close()
            shared.unlink(missing_ok=True)

    assert result.returncode == 0, result.stderr
    assert "another copy" not in result.stdout and bucket.keys("automations/inc/changes/") == []
    lock_dir = open_home / ".cache" / "fleettickets"
    assert oct(lock_dir.stat().st_mode & 0o777) == "0o700"
    lock = lock_dir / "fleettickets-run_ingest.lock"
    assert lock.is_file()
    os.chmod(open_home / ".cache", 0o755)
    assert as_user(NOBODY, "ls", str(open_home / ".cache")).returncode == 0
    attempt = as_user(NOBODY, "flock", "-n", str(lock), "true")
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr


def plant(tmp_path: Path, how: str) -> tuple[Path, Path]:
    """A lock directory (and the victim file a hijack would truncate) prepared as `how` says."""
    lock_dir, victim = tmp_path / "locks", tmp_path / "victim.txt"
    victim.write_text("precious\n")
    if how == "symlinked-directory":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        lock_dir.symlink_to(tmp_path / "elsewhere")
        return lock_dir, victim
    lock_dir.mkdir(mode=0o700)
    lock = lock_dir / "fleettickets-run_ingest.lock"
    if how == "world-writable":
        os.chmod(lock_dir, 0o777)
    elif how == "sticky-like-tmp":
        os.chmod(lock_dir, 0o1777)
    elif how == "group-writable":
        os.chmod(lock_dir, 0o770)
    elif how == "another-users-directory":
        os.chown(lock_dir, NOBODY, NOBODY)
    elif how == "symlinked-lock-file":
        lock.symlink_to(victim)
    elif how == "another-users-lock-file":
        lock.write_text("")
        os.chown(lock, NOBODY, NOBODY)
    return lock_dir, victim


@pytest.mark.parametrize(("how", "reason"), [
    ("world-writable", "other users may write in it"), ("sticky-like-tmp", "other users may write in it"),
    ("group-writable", "other users may write in it"),
    pytest.param("another-users-directory", "it belongs to another user", marks=needs_root),
    ("symlinked-directory", "it is a symlink"), ("symlinked-lock-file", "its lock file is a symlink"),
    pytest.param("another-users-lock-file", "its lock file is not a plain file of yours", marks=needs_root),
])
def test_a_lock_directory_someone_else_could_plant_in_is_refused(db, bucket, tmp_path, how, reason):
    bucket.put_samples("inc")
    lock_dir, victim = plant(tmp_path, how)

    result = run_script(tmp_path, FLEETTICKETS_LOCK_DIR=str(lock_dir))

    assert result.returncode == 1
    assert result.stderr.strip() == (f"run_ingest.sh: will not lock in '{lock_dir}': {reason}; set "
                                     "FLEETTICKETS_LOCK_DIR to a directory only you can write")
    assert victim.read_text() == "precious\n" and len(bucket.keys("automations/inc/changes/")) == 3


def test_following_the_refusal_advice_runs(db, bucket, tmp_path):
    bucket.put_samples("inc")
    lock_dir, _ = plant(tmp_path, "world-writable")
    assert run_script(tmp_path, FLEETTICKETS_LOCK_DIR=str(lock_dir)).returncode == 1

    private = tmp_path / "mine"
    private.mkdir(mode=0o700)
    result = run_script(tmp_path, FLEETTICKETS_LOCK_DIR=str(private))

    assert result.returncode == 0, result.stderr


def test_the_lock_file_is_opened_without_truncating_it(db, bucket, tmp_path):
    (tmp_path / "fleettickets-run_ingest.lock").write_text("left by an earlier version\n")

    assert run_script(tmp_path).returncode == 0

    assert (tmp_path / "fleettickets-run_ingest.lock").read_text() == "left by an earlier version\n"


# -- the env file sets fleettickets settings only -------------------------------------------------------------

def test_the_env_file_cannot_set_the_interpreter_the_path_or_the_loader(db, bucket, tmp_path):
    bucket.put_samples("inc")
    marker = tmp_path / "hijacked"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "python").write_text(f"#!/bin/sh\ntouch {marker}\n")
    os.chmod(evil / "python", 0o755)
    (evil / "inc").mkdir()
    (evil / "inc" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "run.env").write_text(
        f"PYTHON={evil / 'python'}\nPATH={evil}\nLD_PRELOAD={evil / 'nothing.so'}\nPYTHONPATH={evil}\n"
        "RUSTFS_REGION=us-east-1\n")

    result = run_script(tmp_path)

    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    for number, key in enumerate(["PYTHON", "PATH", "LD_PRELOAD", "PYTHONPATH"], start=1):
        assert (f"run_ingest.sh: {tmp_path / 'run.env'} line {number} sets {key}, which is not a fleettickets "
                "setting; ignored") in result.stderr
    assert "RUSTFS_REGION" not in result.stderr and bucket.keys("automations/inc/changes/") == []
