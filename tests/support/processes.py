"""Ingest runs as real child processes, for the tests that freeze, cut or kill them midway."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Ingests:
    """Starts `python -m inc.import_inc --from-bucket --apply` children and kills any still alive at teardown,
    so a failing assertion never leaves a frozen (SIGSTOPped) run behind."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, env: dict[str, str] | None = None, fault: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "AWS_MAX_ATTEMPTS": "2", **(env or {})}
        if fault:
            env["FLEETTICKETS_FAULT"] = fault
        process = subprocess.Popen([sys.executable, "-m", "inc.import_inc", "--from-bucket", "--apply"], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(process)
        return process

    def kill_leftovers(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate()


def wait_until_stopped(process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the ingest never reached its stop point")


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err
