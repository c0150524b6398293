"""History capture for either dataset: closure episodes and the daily backlog snapshot (capture_history(dataset))."""

from __future__ import annotations

import argparse
import json

import psycopg

from fleettickets import database, edge, locks
from fleettickets.dataset import Dataset
from fleettickets.log import Log
from fleettickets.settings import RunLimits

CAPTURE = "SELECT tickets.capture_history(%s::text)"
LOCK_TIMEOUT = "SELECT pg_catalog.current_setting('lock_timeout'::text)"


def capture(conn: psycopg.Connection, dataset: Dataset) -> str:
    """Run the capture in the caller's transaction; each dataset's post-apply step, also when nothing was new.

    The capture waits for the dataset's ingest lock, then the history lock, each as long as the session's
    lock_timeout: past it, LockHeld names who holds them."""
    try:
        with conn.transaction():
            row = conn.execute(CAPTURE, (dataset.name,)).fetchone()
    except psycopg.errors.LockNotAvailable:
        waited = conn.execute(LOCK_TIMEOUT).fetchone()
        holders = [f"the {name} lock by {found.describe()}" for name in (dataset.name, "history")
                   if (found := locks.holder_of(conn, name)) and found.pid != conn.info.backend_pid]
        raise locks.LockHeld(f"the history capture waited {waited[0] if waited else 'its lock_timeout'} for "
                             f"{'; '.join(holders) or 'a lock since let go'}; it runs again after the next run"
                             ) from None
    outcome = row[0] if row else None
    return f"history captured: {json.dumps(outcome, sort_keys=True)}"


def capture_command(dataset: Dataset) -> edge.Command:
    """--capture-history: the capture on its own; without --apply it is rolled back."""
    def run(args: argparse.Namespace) -> int:
        apply = args.apply
        with database.connect(limits=RunLimits.from_env()) as conn, conn.transaction(force_rollback=not apply):
            outcome = capture(conn, dataset)
        Log(dataset.name).info(outcome if apply else f"dry run, rolled back: {outcome}")
        return 0
    return edge.Command("--capture-history", "run tickets.capture_history(dataset) alone: closure events and today's "
                       "backlog snapshot", run, log_name=dataset.name)
