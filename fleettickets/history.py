"""History capture for either dataset: closure episodes and the daily backlog snapshot (capture_history(dataset))."""

from __future__ import annotations

import argparse
import json

import psycopg

from fleettickets import database, edge
from fleettickets.dataset import Dataset
from fleettickets.log import Log

CAPTURE = "SELECT tickets.capture_history(%s)"


def capture(conn: psycopg.Connection, dataset: Dataset) -> str:
    """Run the capture in the caller's transaction; each dataset's post-apply step, also when nothing was new."""
    row = conn.execute(CAPTURE, (dataset.name,)).fetchone()
    outcome = row[0] if row else None
    return f"history captured: {json.dumps(outcome, sort_keys=True)}"


def capture_command(dataset: Dataset) -> edge.Command:
    """--capture-history: the capture on its own; without --apply it is rolled back."""
    def run(args: argparse.Namespace) -> int:
        apply = args.apply
        with database.connect() as conn, conn.transaction(force_rollback=not apply):
            outcome = capture(conn, dataset)
        Log(dataset.name).info(outcome if apply else f"dry run, rolled back: {outcome}")
        return 0
    return edge.Command("--capture-history", "run tickets.capture_history(dataset) alone: closure events and today's "
                       "backlog snapshot", run, log_name=dataset.name)
