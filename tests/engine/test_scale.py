"""A 500,000-row change file streams through in bounded memory."""

from __future__ import annotations

import os
import sys

import pytest

import devstack
from support.streamdata import HEADER, ROOT, ticket_row

# The ceiling for the whole ingest process on this file.
PEAK_RSS_LIMIT_MB = 200


def write_big_file(path, rows: int) -> None:
    with path.open("w") as out:
        out.write(HEADER + "\n")
        for n in range(rows):
            out.write(ticket_row(f"INC{n:012d}", "2026-11-20 06:00:00") + "\n")


def peak_rss_mb(*args: str) -> tuple[int, float]:
    return devstack.peak_rss([sys.executable, "-m", "inc.import_inc", *args], dict(os.environ), ROOT)


@pytest.mark.slow
def test_half_a_million_rows_apply_within_the_memory_ceiling(db, tmp_path):
    big = tmp_path / "2026-11-20T06-00-00.csv"
    write_big_file(big, 500_000)

    code, peak_mb = peak_rss_mb("--inc-csv", str(big), "--apply")

    assert code == 0
    assert db.scalar("SELECT count(*) FROM tickets.inc") == 500_000
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.slow
def test_memory_does_not_grow_with_the_file(db, tmp_path):
    """120,000 rows are ~36 MB of CSV (and several times that as Python objects): holding even a third of the file
    would show. Streaming keeps the peak within a few MB of a 2,000-row file's."""
    sizes, file_mb = {}, {}
    for rows in (2_000, 120_000):
        path = tmp_path / f"2026-11-20T06-{rows % 60:02d}-00.csv"
        write_big_file(path, rows)
        file_mb[rows] = path.stat().st_size / 2**20
        code, sizes[rows] = peak_rss_mb("--inc-csv", str(path), "--apply")
        assert code == 0
    growth = sizes[120_000] - sizes[2_000]
    assert file_mb[120_000] > 30 and growth < file_mb[120_000] / 3, (sizes, file_mb)
