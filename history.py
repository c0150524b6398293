"""History capture for INC: closure episodes and the daily backlog snapshot (tickets.capture_history())."""

from __future__ import annotations

import json

import psycopg

import database
from report import Log

CAPTURE = "SELECT tickets.capture_history()"


def capture(conn: psycopg.Connection) -> str:
    """Run the capture in the caller's transaction; INC's post-apply step, also when nothing was new."""
    row = conn.execute(CAPTURE).fetchone()
    outcome = row[0] if row else None
    return f"history captured: {json.dumps(outcome, sort_keys=True)}"


def capture_alone(apply: bool) -> int:
    """--capture-history: the capture on its own; without --apply it is rolled back."""
    with database.connect() as conn, conn.transaction(force_rollback=not apply):
        outcome = capture(conn)
    Log("inc").info(outcome if apply else f"dry run, rolled back: {outcome}")
    return 0
