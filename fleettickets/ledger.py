"""The record of what was done: the ledger of change files (tickets.ingest_files), the watermark, the run log.

The ledger is what makes runs repeatable: a file version (key + ETag) it
holds as applied is never applied again, only archived; one it holds as
rejected is only moved to rejected/ — unless it was moved there already and a
person put it back in changes/ (after raising a limit, say): then it is tried
again, since the reason may be gone. The run log (tickets.ingest_runs) is
what --status and the health of the schedule are read from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import psycopg

from fleettickets import database, outward
from fleettickets.dataset import Dataset
from fleettickets.errors import FleetError

if TYPE_CHECKING:  # the deploy's runner reads and carries the watermark without loading the engine
    from fleettickets.changefile import FileCounts, Source
    from fleettickets.report import IngestReport, TicketCounts

RECORD_FILE = """
INSERT INTO tickets.ingest_files AS f (dataset, key, etag, size_bytes, status, rows_read, alarms_dropped, sentinels,
                                       blank_lines, duplicates, inserted, updated, stale, rows_rejected, error,
                                       batch_id)
VALUES (%(dataset)s, %(key)s, %(etag)s, %(size)s, %(status)s, %(rows_read)s, %(alarms_dropped)s, %(sentinels)s,
        %(blank_lines)s, %(duplicates)s, %(inserted)s, %(updated)s, %(stale)s, %(rows_rejected)s, %(error)s,
        %(batch_id)s)
ON CONFLICT (dataset, key, etag) DO UPDATE
    SET size_bytes = excluded.size_bytes, status = excluded.status, rows_read = excluded.rows_read,
        alarms_dropped = excluded.alarms_dropped, sentinels = excluded.sentinels, blank_lines = excluded.blank_lines,
        duplicates = excluded.duplicates, inserted = excluded.inserted, updated = excluded.updated,
        stale = excluded.stale, rows_rejected = excluded.rows_rejected, error = excluded.error,
        batch_id = excluded.batch_id, applied_at = now(), moved_at = NULL
"""

RECORD_BATCH = """
INSERT INTO tickets.ingest_batches (dataset, files, rows_staged, duplicates, inserted, updated, stale)
VALUES (%(dataset)s, %(files)s, %(staged)s, %(duplicates)s, %(inserted)s, %(updated)s, %(stale)s)
RETURNING batch_id
"""

ADVANCE_WATERMARK = """
UPDATE tickets.import_meta
SET metadata = metadata || jsonb_build_object(
        'source_max_key', GREATEST(metadata->>'source_max_key' COLLATE "C", %(key)s::text COLLATE "C"),
        'last_file_applied_at', now()),
    updated_at = now()
WHERE dataset = %(dataset)s
"""

VERSIONS_OF_KEYS = """
SELECT key, etag, status, moved_at IS NOT NULL, moved_etag FROM tickets.ingest_files
WHERE dataset = %s AND key = ANY(%s)
"""

WATERMARK = "SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = %s"
ADOPTED_THROUGH = "SELECT metadata->>'adopted_through' FROM tickets.import_meta WHERE dataset = %s"

MARK_ARCHIVED = """
UPDATE tickets.ingest_files SET moved_at = now(), moved_etag = %s WHERE dataset = %s AND key = %s AND etag = %s
"""

# Files gone from changes/ were moved (to processed/ or rejected/) by a run that died before recording it.
RECONCILE_ARCHIVED = """
UPDATE tickets.ingest_files SET moved_at = now()
WHERE dataset = %s AND moved_at IS NULL AND key LIKE %s AND NOT key = ANY(%s)
"""

# Of the keys given, those with a version applied after `since` (a rejected/ copy it supersedes).
APPLIED_AFTER = """
SELECT DISTINCT key FROM tickets.ingest_files
WHERE dataset = %s AND status = 'applied' AND key = ANY(%s) AND applied_at > %s
"""

REJECTION_REASON = "SELECT error FROM tickets.ingest_files WHERE dataset = %s AND key = %s AND etag = %s"

START_RUN = "INSERT INTO tickets.ingest_runs (dataset, mode) VALUES (%s, %s) RETURNING run_id"

# Called holding the dataset's lock, so no run of the dataset is alive: a row still 'running' is a run that was
# killed (SIGKILL, the machine lost) before it could close it.
CLOSE_DEAD_RUNS = """
UPDATE tickets.ingest_runs
SET status = 'failed', finished_at = clock_timestamp(),
    error = 'the run ended without closing this row (killed, or the machine stopped); what it committed stays'
WHERE dataset = %s AND finished_at IS NULL
"""

FINISH_RUN = """
UPDATE tickets.ingest_runs
SET finished_at = clock_timestamp(), status = %(status)s, files_applied = %(files_applied)s,
    files_archived = %(files_archived)s, files_rejected = %(files_rejected)s, batches = %(batches)s,
    rows_inserted = %(inserted)s,
    rows_updated = %(updated)s, rows_stale = %(stale)s, rows_rejected = %(rows_rejected)s, error = %(error)s
WHERE run_id = %(run_id)s
"""

STAMP_RUN_OUTCOME = """
UPDATE tickets.import_meta
SET metadata = metadata || jsonb_build_object('last_run_at', now(), %(stamp)s::text, now()), updated_at = now()
WHERE dataset = %(dataset)s
"""


def record_file(cur: psycopg.Cursor, dataset: Dataset, source: Source, status: str, counts: FileCounts, *,
                tickets: TicketCounts | None = None, batch_id: int | None = None, error: str | None = None) -> None:
    """One file version in the ledger; `tickets` only when the file was applied alone (a batch of one)."""
    cur.execute(RECORD_FILE, {
        "dataset": dataset.name, "key": source.key, "etag": source.etag, "size": source.size, "status": status,
        "error": outward.line(error) if error else None, "batch_id": batch_id,
        **{field.name: getattr(counts, field.name) for field in fields(counts)},
        **{name: getattr(tickets, name) if tickets else None for name in ("duplicates", "inserted", "updated",
                                                                           "stale")},
    })


def record_batch(cur: psycopg.Cursor, dataset: Dataset, files: int, tickets: TicketCounts) -> int:
    row = cur.execute(RECORD_BATCH, {"dataset": dataset.name, "files": files, "staged": tickets.staged,
                                     "duplicates": tickets.duplicates, "inserted": tickets.inserted,
                                     "updated": tickets.updated, "stale": tickets.stale}).fetchone()
    assert row is not None
    return int(row[0])


def advance_watermark(cur: psycopg.Cursor, dataset: Dataset, key: str) -> None:
    cur.execute(ADVANCE_WATERMARK, {"key": key, "dataset": dataset.name})


@dataclass(frozen=True)
class Version:
    """What the ledger holds of one file version."""

    status: str
    """'applied' or 'rejected'."""
    moved: bool
    """Moved out of changes/ (to processed/ or rejected/) since."""
    copy_etag: str | None = None
    """Its copy's ETag in processed/ or rejected/, once moved (before migration 24: not recorded)."""


# What --baseline reads and carries over of the original importer's watermark.
WATERMARKS = """
SELECT dataset, metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset IN ('inc', 'crq') ORDER BY dataset
"""
# adopted_through: the original importer applied every file up to it and archived it to processed/; catching up
# from the archive (plan.archived_unknown) starts above it, so none of those files is applied a second time.
CARRY_WATERMARK = """
UPDATE tickets.import_meta
SET metadata = metadata || jsonb_build_object('source_max_key', %(key)s::text, 'adopted_through', %(key)s::text,
                                              'adopted_at', now()),
    updated_at = now()
WHERE dataset = %(dataset)s
"""

# What --status and --check read of the ledger and the run log.
META = """
SELECT metadata->>'source_max_key', (metadata->>'last_success_at')::timestamptz,
       (metadata->>'last_failure_at')::timestamptz
FROM tickets.import_meta WHERE dataset = %s
"""

NEWEST_APPLIED = """
SELECT key, applied_at, now() - applied_at, now() FROM tickets.ingest_files
WHERE dataset = %s AND status = 'applied' AND key LIKE %s
ORDER BY key COLLATE "C" DESC LIMIT 1
"""

FILE_COUNTS = """
SELECT (SELECT count(*) FROM tickets.ingest_files WHERE dataset = %(dataset)s AND status = 'rejected'),
       (SELECT count(*) FROM tickets.ingest_files
        WHERE dataset = %(dataset)s AND status = 'applied' AND moved_at IS NULL AND key NOT LIKE 'file:%%'),
       (SELECT count(*) FROM tickets.rejected_rows WHERE dataset = %(dataset)s)
"""

LAST_RUNS = """
SELECT started_at, finished_at - started_at, status, files_applied, batches, files_rejected, rows_inserted,
       rows_updated, error
FROM tickets.ingest_runs WHERE dataset = %s ORDER BY run_id DESC LIMIT 5
"""

# tickets.clock() is now() unless a test or a what-if pins fleettickets.now.
HEALTH = """
SELECT tickets.clock(),
       (metadata->>'last_success_at')::timestamptz,
       (SELECT key FROM tickets.ingest_files
        WHERE dataset = %(dataset)s AND status = 'applied' AND key LIKE %(changes)s
        ORDER BY key COLLATE "C" DESC LIMIT 1),
       (SELECT count(*) FROM tickets.ingest_files
        WHERE dataset = %(dataset)s AND status = 'applied' AND moved_at IS NULL AND key NOT LIKE 'file:%%'
          AND applied_at < tickets.clock() - %(grace)s)
FROM tickets.import_meta WHERE dataset = %(dataset)s
"""

LAST_RUN = """
SELECT status, started_at, finished_at, error FROM tickets.ingest_runs
WHERE dataset = %s ORDER BY run_id DESC LIMIT 1
"""


def versions_of(conn: psycopg.Connection, dataset: Dataset, keys: Iterable[str]) -> dict[str, dict[str, Version]]:
    """For each key, the versions the ledger holds, by ETag."""
    versions: dict[str, dict[str, Version]] = {}
    for key, etag, status, moved, copy_etag in conn.execute(VERSIONS_OF_KEYS, (dataset.name, list(keys))):
        versions.setdefault(key, {})[etag] = Version(status, moved, copy_etag)
    return versions


def applied_after(conn: psycopg.Connection, dataset: Dataset, keys: Iterable[str], since: object) -> set[str]:
    """Those of `keys` with a version applied after `since`."""
    return {key for (key,) in conn.execute(APPLIED_AFTER, (dataset.name, list(keys), since))}


def watermark(conn: psycopg.Connection, dataset: Dataset) -> str | None:
    row = conn.execute(WATERMARK, (dataset.name,)).fetchone()
    return row[0] if row else None


def adopted_through(conn: psycopg.Connection, dataset: Dataset) -> str | None:
    """The original importer's watermark when this database was adopted (run_migrations.py --baseline): it
    applied and archived every file up to it, and none of them is in this ledger."""
    row = conn.execute(ADOPTED_THROUGH, (dataset.name,)).fetchone()
    return row[0] if row else None


def mark_archived(conn: psycopg.Connection, dataset: Dataset, source: Source, copy_etag: str) -> None:
    """Record `source` as moved to processed/ or rejected/, where its copy holds ETag `copy_etag` (not the
    source's for a multipart or SSE-KMS upload: catch-up knows the copy by it)."""
    conn.execute(MARK_ARCHIVED, (copy_etag, dataset.name, source.key, source.etag))


def reconcile_archived(conn: psycopg.Connection, dataset: Dataset, keys_in_changes: Iterable[str]) -> None:
    """Record as moved the files no longer in changes/ (a run moved them, then died)."""
    conn.execute(RECONCILE_ARCHIVED, (dataset.name, dataset.changes_prefix + "%", list(keys_in_changes)))


def rejection_reason(conn: psycopg.Connection, dataset: Dataset, source: Source) -> str:
    row = conn.execute(REJECTION_REASON, (dataset.name, source.key, source.etag)).fetchone()
    return (row[0] if row else None) or "rejected"


def start_run_log(conn: psycopg.Connection, dataset: Dataset, mode: str) -> int:
    """Open this run's log row, closing any left open by a run that died (the caller holds the dataset's lock)."""
    conn.execute(CLOSE_DEAD_RUNS, (dataset.name,))
    row = conn.execute(START_RUN, (dataset.name, mode)).fetchone()
    assert row is not None
    return int(row[0])


def finish_run_log(conn: psycopg.Connection, dataset: Dataset, run_id: int, report: IngestReport) -> None:
    """Close the run's log row; after a lost connection, on a new one if the database is back."""
    if not (conn.broken or conn.closed):
        _write_run_log(conn, dataset, run_id, report)
        return
    try:
        with database.connect(attempts=1) as fresh:
            _write_run_log(fresh, dataset, run_id, report)
    except (FleetError, psycopg.Error):
        pass  # the row stays 'running', which --status shows as a run that died


def _write_run_log(conn: psycopg.Connection, dataset: Dataset, run_id: int, report: IngestReport) -> None:
    rows, tickets = report.rows, report.tickets
    with conn.transaction():
        conn.execute(FINISH_RUN, {
            "status": "ok" if report.ok else "failed", "files_applied": report.files_applied,
            "files_archived": report.files_archived, "files_rejected": report.files_rejected,
            "batches": report.batches, "inserted": tickets.inserted, "updated": tickets.updated,
            "stale": tickets.stale,
            "rows_rejected": rows.rows_rejected, "error": outward.line(report.why_not_ok) or None,
            "run_id": run_id})
        conn.execute(STAMP_RUN_OUTCOME, {"stamp": "last_success_at" if report.ok else "last_failure_at",
                                         "dataset": dataset.name})


def outcomes(conn: psycopg.Connection, dataset: Dataset) -> tuple:
    """(watermark, last success, last failure) of the dataset, each None when there is none yet."""
    return conn.execute(META, (dataset.name,)).fetchone() or (None, None, None)


def newest_applied(conn: psycopg.Connection, dataset: Dataset) -> tuple | None:
    """(key, applied_at, its age, now) of the newest change file applied from the bucket, or None."""
    return conn.execute(NEWEST_APPLIED, (dataset.name, dataset.changes_prefix + "%")).fetchone()


def file_counts(conn: psycopg.Connection, dataset: Dataset) -> tuple:
    """(files rejected, applied files not yet archived, rows kept in rejected_rows)."""
    row = conn.execute(FILE_COUNTS, {"dataset": dataset.name}).fetchone()
    assert row is not None
    return row


def last_runs(conn: psycopg.Connection, dataset: Dataset) -> list[tuple]:
    return conn.execute(LAST_RUNS, (dataset.name,)).fetchall()


def health(conn: psycopg.Connection, dataset: Dataset, grace: object) -> tuple | None:
    """(now, last success, newest key applied from the bucket, applied files unarchived for over `grace`)."""
    return conn.execute(HEALTH, {"dataset": dataset.name, "changes": dataset.changes_prefix + "%",
                                 "grace": grace}).fetchone()


def last_run(conn: psycopg.Connection, dataset: Dataset) -> tuple | None:
    """(status, started_at, finished_at, error) of the dataset's latest run, or None."""
    return conn.execute(LAST_RUN, (dataset.name,)).fetchone()


def watermarks(conn: psycopg.Connection) -> list[tuple[str, str | None]]:
    """Each dataset's watermark by name, as the original importer left it (--baseline)."""
    return conn.execute(WATERMARKS).fetchall()


def carry_watermark(cur: psycopg.Cursor, dataset: str, key: str) -> None:
    """Make `key` the watermark of `dataset` and the bound below which catch-up applies nothing (--baseline)."""
    cur.execute(CARRY_WATERMARK, {"dataset": dataset, "key": key})
