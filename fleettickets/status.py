"""--status: where a dataset stands, read from the ledger, the run log and its table, in EAT."""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

from fleettickets import database, ledger, locks, outward, plan, sourcetime
from fleettickets.bucket import Bucket, StorageError, StoredObject
from fleettickets.dataset import Dataset
from fleettickets.settings import RunLimits
from fleettickets.sourcetime import EAT, KeyKind, classify

OPERATORS_READ_EAT = "SET TIME ZONE 'Africa/Nairobi'"



TICKET_COUNTS = "SELECT count(*), count(*) FILTER (WHERE bucket = 'open'), count(geom) FROM {table}"




def print_status(dataset: Dataset, bucket: Bucket | None) -> int:
    """Everything --status prints; `bucket` is None when no bucket is configured (the changes/ lines are left
    out)."""
    with database.connect(limits=RunLimits.from_env()) as conn:
        conn.execute(OPERATORS_READ_EAT)
        watermark, last_success, last_failure = ledger.outcomes(conn, dataset)
        newest = ledger.newest_applied(conn, dataset)
        tickets, open_tickets, placed = _one(conn, sql.SQL(TICKET_COUNTS).format(table=dataset.table_identifier))
        rejected_files, pending_archive, rejected_rows = ledger.file_counts(conn, dataset)
        runs = ledger.last_runs(conn, dataset)
        (clock_now,) = _one(conn, "SELECT tickets.clock()")

    show(f"{dataset.name}: {dataset.table}")
    show(f"  watermark        {watermark or '(none: nothing applied from the bucket yet)'}")
    if newest:
        key, applied_at, since_applied, now = newest
        exported = sourcetime.export_time(key)
        if exported:
            show(f"  newest applied   {key}: exported {exported:%Y-%m-%d %H:%M} EAT ({age(now - exported)} ago), "
                  f"applied {applied_at:%Y-%m-%d %H:%M} EAT ({age(since_applied)} ago)")
    show(f"  last success     {f'{last_success:%Y-%m-%d %H:%M} EAT' if last_success else 'never'}"
          + (f" (last failure {last_failure:%Y-%m-%d %H:%M} EAT)" if last_failure else ""))
    show(f"  tickets          {tickets} ({open_tickets} open, {placed} with a point)")
    show(f"  files            {rejected_files} rejected, {pending_archive} applied but not yet archived; "
          f"{rejected_rows} rejected rows kept")
    show("  last runs")
    for started, took, state, applied, batches, rejected, inserted, updated, error in runs:
        shown = state if state != "running" or took else "running (or died)"
        took_s = f"{took.total_seconds():.1f} s" if took else "-"
        show(f"    {started:%Y-%m-%d %H:%M} EAT {shown:8} {took_s:>8}  {applied} files in {batches} "
              f"batch{'' if batches == 1 else 'es'}, "
              f"{rejected} rejected, "
              f"{inserted} new, {updated} updated{'  ' + error if error else ''}")
    if not runs:
        show("    (none)")
    if bucket is not None:
        _show_changes(dataset, bucket, clock_now)
    return 0


def _show_changes(dataset: Dataset, bucket: Bucket, now: dt.datetime) -> None:
    try:
        findings = unapplicable_in_changes(dataset, bucket, now)
    except StorageError as error:
        show(f"  changes/         not listed: {error}")
        return
    if not findings:
        show("  changes/         nothing that is not a change file")
    for obj, kind in findings:
        show(f"  changes/         {obj.key}: {kind.value}, there since {obj.modified.astimezone(EAT):%Y-%m-%d %H:%M} "
             "EAT" + (" (held until its time comes)" if kind is KeyKind.AHEAD else " (left alone)"))


def unapplicable_in_changes(dataset: Dataset, bucket: Bucket, now: dt.datetime) -> list[tuple[StoredObject, KeyKind]]:
    """Objects under changes/ a run leaves where they are: not change files, or stamped too far ahead."""
    findings: list[tuple[StoredObject, KeyKind]] = []
    for obj in bucket.list(dataset.changes_prefix):
        kind = classify(dataset.key_pattern, obj.key, now)
        if kind is not KeyKind.CHANGE_FILE:
            findings.append((obj, kind))
    return findings


def show(text: str) -> None:
    """One line of --status: keys and errors come from outside, so it is escaped and redacted like a log line."""
    print(outward.line(text))


def _one(conn: psycopg.Connection, query: str | sql.Composed, params: tuple | dict = ()) -> tuple:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def age(delta: dt.timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


# -- --check: a health check for Coolify or cron ------------------------------------------------------------------

# The scheduled tasks run */20 from 06:00 to 20:40 EAT; time outside that
# window does not count towards a run or a file being late.
EXPORT_HOURS = (dt.time(6, 0), dt.time(21, 0))
DEFAULT_MAX_RUN_AGE_MIN = 60
DEFAULT_MAX_FILE_AGE_MIN = 90
UNARCHIVED_GRACE = dt.timedelta(hours=1)




def _superseded(conn: psycopg.Connection, dataset: Dataset, rejected: StoredObject) -> bool:
    """Whether a file in rejected/ has been dealt with: a version of its key was applied after it was moved
    there (the operator put it back after raising a limit, or uploaded a corrected file under its name)."""
    match = sourcetime.STAMP_IN_NAME.fullmatch(rejected.key.rpartition("/")[2])
    if match is None:
        return False
    key = f"{dataset.changes_prefix}{match['stamp']}.csv"
    return bool(ledger.applied_after(conn, dataset, [key], rejected.modified))


def export_hours_between(start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """How much of [start, end] falls within the export hours (06:00–21:00 EAT) of any day."""
    total = dt.timedelta()
    day = start.astimezone(EAT).date()
    while day <= end.astimezone(EAT).date():
        opens = dt.datetime.combine(day, EXPORT_HOURS[0], EAT)
        closes = dt.datetime.combine(day, EXPORT_HOURS[1], EAT)
        total += max(min(end, closes) - max(start, opens), dt.timedelta())
        day += dt.timedelta(days=1)
    return total


def check_health(dataset: Dataset, *, max_run_age_min: float, max_file_age_min: float,
                 bucket: Bucket) -> tuple[bool, str]:
    """(healthy, one line saying why) for the dataset's schedule, from the database and the bucket."""
    rejected = [obj for obj in bucket.list(dataset.rejected_prefix) if not obj.key.endswith(".error.txt")]
    problems: list[str] = []
    with database.connect(limits=RunLimits.from_env()) as conn:
        health = ledger.health(conn, dataset, UNARCHIVED_GRACE)
        last_run = ledger.last_run(conn, dataset)
        rejected_waiting = sum(1 for obj in rejected if not _superseded(conn, dataset, obj))
        behind = len(plan.archived_unknown(conn, dataset, bucket, ledger.watermark(conn, dataset), health[0])
                     ) if health else 0
        strangers = [(name, found) for name in (dataset.name, "history", "geocode")
                     if (found := locks.held_by_stranger(conn, name))]
        # A run takes the dataset's lock before it writes its row and closes the row before it lets go: a row
        # still running while nobody holds the lock is a run that ended without recording how.
        unrecorded = (last_run[1] if last_run and last_run[0] == "running"
                      and locks.holder_of(conn, dataset.name) is None else None)
    if health is None:
        return False, "the database has no record of this dataset (run the migrations: python run_migrations.py)"
    now, last_success, newest_key, unarchived = health
    if last_run and last_run[0] == "failed":
        problems.append(f"the last run failed: {last_run[3] or 'see --status'}")
    if unrecorded:
        problems.append(f"the last run (started {age(now - unrecorded)} ago) ended without recording its outcome "
                        "(killed, its database link lost, or its last write refused): its own output says why; "
                        "the next run records it as failed")
    if last_success is None:
        problems.append("no run has ever succeeded")
    elif export_hours_between(last_success, now) > dt.timedelta(minutes=max_run_age_min):
        problems.append(f"no successful run for {age(now - last_success)} (over {max_run_age_min:g} min of export "
                        "hours: are the scheduled tasks running?)")
    exported = sourcetime.export_time(newest_key) if newest_key else None
    if exported is None:
        problems.append("no change file applied from the bucket yet")
    else:
        if export_hours_between(exported, now) > dt.timedelta(minutes=max_file_age_min):
            problems.append(f"the newest change file was exported {age(now - exported)} ago (over "
                            f"{max_file_age_min:g} min of export hours: has the export stopped?)")
    if rejected_waiting:
        problems.append(f"{rejected_waiting} files wait in {dataset.rejected_prefix}")
    if unarchived:
        problems.append(f"{unarchived} applied files not archived for over an hour (is the bucket writable?)")
    if behind:
        problems.append(f"{behind} files in {dataset.processed_prefix} are not in the ledger (a database restored "
                        "from a backup?): the next run applies them")
    stuck = [(obj, kind) for obj, kind in unapplicable_in_changes(dataset, bucket, now)
             if now - obj.modified > dt.timedelta(minutes=max_file_age_min)]
    if stuck:
        oldest, kind = min(stuck, key=lambda found: found[0].modified)
        problems.append(f"{len(stuck)} objects in {dataset.changes_prefix} left alone for over {max_file_age_min:g} "
                        f"min (oldest: {oldest.key}, {kind.value}; see --status)")
    for name, found in strangers:
        problems.append(f"the {name} lock is held by a session that is not a fleettickets run: {found.describe()}")
    if problems:
        return False, "unhealthy: " + "; ".join(problems)
    assert last_success is not None and exported is not None
    return True, (f"healthy: last success {age(now - last_success)} ago, newest change file exported "
                  f"{age(now - exported)} ago")
