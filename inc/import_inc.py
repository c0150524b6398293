"""python -m inc.import_inc: drain INC change files into tickets.inc."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

import pipeline


def capture_history(conn: psycopg.Connection) -> str | None:
    """Snapshot the INC backlog and closures after every applied run.

    tickets.capture_history() comes with the history migrations; until a
    database has it there is nothing to capture, and the ingest must not fail
    for that.
    """
    if not conn.execute("SELECT to_regprocedure('tickets.capture_history()') IS NOT NULL").fetchone()[0]:
        return None
    outcome = conn.execute("SELECT tickets.capture_history()").fetchone()[0]
    return f"history captured: {outcome}"


DATASET = pipeline.Dataset.standard("inc", lock_id=1, post_apply=capture_history)


def main(argv: Sequence[str] | None = None) -> int:
    return pipeline.main(DATASET, argv)


if __name__ == "__main__":
    raise SystemExit(main())
