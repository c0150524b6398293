"""The benchmark still runs: CI runs it at a tiny size (figures come from docs/performance.md, not from here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_benchmark_runs_at_a_tiny_size_and_prints_its_table(pg_admin_url):
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_ingest.py", "--files", "2", "--rows", "300", "--big-rows", "3000",
         "--dashboard-tickets", "500", "--repeat", "1"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": pg_admin_url}, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for measure in ("COPY floor", "full replay, local files, batched", "full replay, local files, one file a batch",
                    "full replay from S3", "incremental run", "no-op run", "peak RSS, the 2-file replay in batches",
                    "fn_inc_dashboard at 500 tickets", "bad week: fn_inc_dashboard", "bad week: floor",
                    "bad week: filtered to one cluster", "bad week: payload size"):
        assert any(line.startswith(measure) for line in lines), f"no {measure!r} line in:\n{result.stdout}"
