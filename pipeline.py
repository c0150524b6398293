"""The ingest engine: drains a dataset's change files into PostgreSQL, then archives them.

Dataset-agnostic: `inc/` and `crq/` each build a `Dataset` and call `main()`.
A run takes the dataset's advisory lock, lists `changes/`, and applies each
new file oldest first in one transaction per file (stream → COPY into staging
→ version-aware upsert → ledger → watermark). Only after the commit is the
file moved to `processed/`, so a run killed at any point leaves either an
unapplied file (applied next run) or an applied one still in `changes/`
(archived next run, never re-applied).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

import settings
from bucket import ObjectChanged, StorageError, StorageUnavailable, TransferError
from changefile import ChangeFile, FileCounts, RejectedFile
from settings import FleetError

if TYPE_CHECKING:
    from bucket import Bucket, StoredObject

FAULT_VARIABLE = "FLEETTICKETS_FAULT"
FAULT_POINTS = frozenset({
    "after_list", "mid_copy", "before_commit", "after_commit", "after_copy_object", "mid_post_apply",
})
# botocore retries whole requests itself; a body that breaks off midway is
# read again this many times before the file is left for the next run.
READ_ATTEMPTS = 3

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    line          integer NOT NULL,
    ticket_id     text,
    raw           jsonb,
    reject_reason text,
    raw_text      text
)
"""

# The file's version of each ticket: its newest source_updated_at, then its later row.
FOLDED = """
SELECT DISTINCT ON (ticket_id) ticket_id, raw, line,
       COALESCE(tickets.eat_ts(raw->>'source_updated_at'), '-infinity') AS updated_at
FROM ingest_stage
WHERE reject_reason IS NULL
ORDER BY ticket_id, updated_at DESC, line DESC
"""

# Versions are compared as (source_updated_at, file name, line): on equal
# timestamps the later file wins, within a file the later row. Updating and
# inserting in two steps (rather than INSERT … ON CONFLICT) runs the geom
# trigger once per row instead of twice for every update; it is safe because
# the dataset's advisory lock makes this the only writer of the table.
# only_lines (NULL for all) limits the write to some lines of the folded set,
# to find the rows the database refuses.
UPSERT = """
WITH folded AS (""" + FOLDED + """), latest AS (
    SELECT * FROM folded
    WHERE %(only_lines)s::integer[] IS NULL OR line = ANY(%(only_lines)s::integer[])
), updated AS (
    UPDATE {table} AS t
    SET raw = l.raw, source_file = %(source_file)s, source_line = l.line, ingested_at = now()
    FROM latest AS l
    WHERE t.ticket_id = l.ticket_id
      AND (l.updated_at, %(source_file)s COLLATE "C", l.line)
          > (COALESCE(t.source_updated_at, '-infinity'), t.source_file COLLATE "C", t.source_line)
    RETURNING 1
), inserted AS (
    INSERT INTO {table} (ticket_id, raw, source_file, source_line)
    SELECT l.ticket_id, l.raw, %(source_file)s, l.line
    FROM latest AS l
    WHERE NOT EXISTS (SELECT FROM {table} AS t WHERE t.ticket_id = l.ticket_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ingest_stage WHERE reject_reason IS NULL),
       (SELECT count(*) FROM latest),
       (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM updated)
"""

FOLDED_LINES = "SELECT line FROM (" + FOLDED + ") AS folded ORDER BY line"

REFUSE_ROW = """
UPDATE ingest_stage SET reject_reason = %(reason)s, raw_text = raw::text, raw = NULL WHERE line = %(line)s
"""

KEEP_REJECTED_ROWS = """
INSERT INTO tickets.rejected_rows (dataset, file_key, line, raw_text, reason)
SELECT %(dataset)s, %(key)s, line, raw_text, reject_reason FROM ingest_stage WHERE reject_reason IS NOT NULL
ON CONFLICT (dataset, file_key, line) DO UPDATE
    SET raw_text = excluded.raw_text, reason = excluded.reason, recorded_at = now()
"""

RECORD_FILE = """
INSERT INTO tickets.ingest_files AS f (dataset, key, etag, size_bytes, status, rows_read, alarms_dropped, sentinels,
                                       blank_lines, duplicates, inserted, updated, stale, rows_rejected, error)
VALUES (%(dataset)s, %(key)s, %(etag)s, %(size)s, %(status)s, %(rows_read)s, %(alarms_dropped)s, %(sentinels)s,
        %(blank_lines)s, %(duplicates)s, %(inserted)s, %(updated)s, %(stale)s, %(rows_rejected)s, %(error)s)
ON CONFLICT (dataset, key, etag) DO UPDATE
    SET size_bytes = excluded.size_bytes, status = excluded.status, rows_read = excluded.rows_read,
        alarms_dropped = excluded.alarms_dropped, sentinels = excluded.sentinels, blank_lines = excluded.blank_lines,
        duplicates = excluded.duplicates,
        inserted = excluded.inserted, updated = excluded.updated, stale = excluded.stale,
        rows_rejected = excluded.rows_rejected, error = excluded.error, applied_at = now(), archived_at = NULL
"""

ADVANCE_WATERMARK = """
UPDATE tickets.import_meta
SET metadata = metadata || jsonb_build_object(
        'source_max_key', GREATEST(metadata->>'source_max_key' COLLATE "C", %(key)s::text COLLATE "C"),
        'last_file_applied_at', now()),
    updated_at = now()
WHERE dataset = %(dataset)s
"""


class RunAborted(FleetError):
    """The run cannot go on (database or bucket unreachable); what was committed stays."""


# SQLSTATE classes of errors that the same bytes would meet again on every
# run: data exceptions (22), integrity violations (23), program limits such as
# an index row too large (54). Anything else (a lost connection, a deadlock, a
# timeout, a missing table) is about the moment or the setup, not the file.
DETERMINISTIC_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})

MAX_OBJECT_BYTES_VARIABLE = "FLEETTICKETS_MAX_OBJECT_BYTES"
# Real change files are well under 10 MiB; a catch-up export of weeks could
# reach a few hundred MiB. Past this, the file is rejected before it is read.
MAX_OBJECT_BYTES = 512 * 1024 * 1024


def refused_by_data(error: psycopg.Error) -> bool:
    """Whether the database would refuse the same input again (rather than fail for the moment)."""
    return (error.sqlstate or "")[:2] in DETERMINISTIC_SQLSTATE_CLASSES


WHAT_STAYS = "every file committed before stays applied, the rest is applied next run"


# The export time in a change file's name. [0-9], not \d: \d also matches
# other scripts' digits, and such a key would sort above every real one.
STAMP_PATTERN = r"(?P<stamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2})"


@dataclass(frozen=True)
class Dataset:
    """One ticket stream: where its files are and where its rows go."""

    name: str
    """Short id used in logs, locks and the ledger: 'inc' or 'crq'."""
    table: str
    """Target table, schema-qualified: 'tickets.inc'."""
    ticket_prefix: str
    """Every ticket_id is this prefix plus 12 digits: 'INC'."""
    changes_prefix: str
    """Bucket prefix the export writes to: 'automations/inc/changes/'."""
    processed_prefix: str
    """Where applied files are moved: 'automations/inc/processed/'."""
    rejected_prefix: str
    """Where files that cannot be applied are moved, with a .error.txt beside them."""
    key_pattern: re.Pattern[str]
    """A change-file key; group 'stamp' is the EAT export time that orders files."""
    lock_id: int
    """Second half of the advisory lock key (the first is settings.LOCK_NAMESPACE)."""
    post_apply: Callable[[psycopg.Connection], str | None] | None = None
    """Runs after every --apply run, also when nothing was new; returns a line to report."""

    @classmethod
    def standard(cls, name: str, lock_id: int,
                 post_apply: Callable[[psycopg.Connection], str | None] | None = None) -> Dataset:
        """The layout of the source contract: automations/<name>/{changes,processed,rejected}/."""
        base = f"automations/{name}/"
        return cls(
            name=name,
            table=f"tickets.{name}",
            ticket_prefix=name.upper(),
            changes_prefix=base + "changes/",
            processed_prefix=base + "processed/",
            rejected_prefix=base + "rejected/",
            key_pattern=re.compile(re.escape(base + "changes/") + STAMP_PATTERN + r"\.csv"),
            lock_id=lock_id,
            post_apply=post_apply,
        )

    @property
    def ticket_id_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.ticket_prefix) + r"[0-9]{12}")

    @property
    def table_identifier(self) -> sql.Identifier:
        return sql.Identifier(*self.table.split("."))


@dataclass(frozen=True)
class Command:
    """An action an entrypoint adds beside the ingest, e.g. --geocode-clusters."""

    flag: str
    help: str
    run: Callable[[argparse.Namespace], int]
    """Called with the parsed arguments (args.apply is the dry-run switch); returns the exit code."""
    metavar: str | None = None
    """Set when the flag takes a value, e.g. FILE."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass
class RunReport:
    """What one run did, for the log, the run log row and the exit code."""

    files_applied: int = 0
    files_archived: int = 0
    files_rejected: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    rows: FileCounts = field(default_factory=FileCounts)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.files_rejected or self.files_failed or self.rows.rows_rejected or self.errors)


class Log:
    """Human-readable lines, prefixed with the dataset; warnings and errors go to stderr."""

    def __init__(self, dataset: str) -> None:
        self.prefix = dataset

    def info(self, message: str) -> None:
        print(f"{self.prefix}: {settings.redact(message)}", flush=True)

    def warn(self, message: str) -> None:
        print(f"{self.prefix}: warning: {settings.redact(message)}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"{self.prefix}: error: {settings.redact(message)}", file=sys.stderr, flush=True)


def fault(point: str) -> None:
    """Crash-test hook, inert unless FLEETTICKETS_FAULT names `point`.

    `point` kills the process (SIGKILL); `point:stop` freezes it (SIGSTOP) so a
    test can break something underneath it, then let it go on (SIGCONT).
    """
    wanted = os.environ.get(FAULT_VARIABLE)
    if wanted == point:
        os.kill(os.getpid(), signal.SIGKILL)
    elif wanted == f"{point}:stop":
        os.kill(os.getpid(), signal.SIGSTOP)


def describe_counts(counts: FileCounts) -> str:
    return (f"{counts.rows_read} rows read: {counts.inserted} new, {counts.updated} updated, "
            f"{counts.stale} stale; dropped {counts.alarms_dropped} alarms, {counts.sentinels} sentinels, "
            f"{counts.blank_lines} blank lines; "
            f"folded {counts.duplicates} duplicates; rejected {counts.rows_rejected}")


@dataclass(frozen=True)
class Source:
    """A change file to apply, from the bucket or the local disk."""

    key: str
    """Ledger key: the bucket key, or 'file:' + absolute path."""
    etag: str
    size: int | None
    open: Callable[[], object]
    rewritten: bool = False
    """The export wrote this key before with other content, whose copy is already archived."""

    @property
    def name(self) -> str:
        """The file name, which orders versions with equal timestamps across files."""
        return PurePosixPath(self.key).name

    @property
    def archived_name(self) -> str:
        """Name in processed/ or rejected/: the same, unless that would overwrite an earlier version's copy."""
        if not self.rewritten:
            return self.name
        path = PurePosixPath(self.name)
        return f"{path.stem}.{self.etag[:12]}{path.suffix}"


@contextmanager
def _database_errors(conn: psycopg.Connection, action: str) -> Iterator[None]:
    """A lost connection ends the run with one line; other database errors pass through."""
    try:
        yield
    except psycopg.OperationalError as error:
        if not (conn.broken or conn.closed):
            raise
        raise RunAborted(f"database connection lost while {action}: {settings.describe_db_error(error)}; "
                         f"{WHAT_STAYS}") from None


def load_file(conn: psycopg.Connection, dataset: Dataset, source: Source) -> FileCounts:
    """Apply one file inside the caller's transaction; raises RejectedFile for an untrustworthy file."""
    limit = settings.positive_int(MAX_OBJECT_BYTES_VARIABLE, MAX_OBJECT_BYTES, "1073741824")
    if source.size is not None and source.size > limit:
        raise RejectedFile(source.key, None, f"{source.size} bytes, over the limit of {limit} bytes for one file "
                                             f"(raise {MAX_OBJECT_BYTES_VARIABLE} to apply it)")
    stream = source.open()
    try:
        change_file = ChangeFile(stream, source.key, dataset.ticket_id_pattern, f"{dataset.ticket_prefix} + 12 digits")
        with conn.cursor() as cur:
            cur.execute("TRUNCATE ingest_stage")
            with cur.copy("COPY ingest_stage (line, ticket_id, raw, reject_reason, raw_text) FROM STDIN") as copy:
                for number, row in enumerate(change_file.rows()):
                    copy.write_row(row)
                    if number == 0:
                        fault("mid_copy")
            counts = change_file.counts
            _write_staged(cur, dataset, source, counts)
            record_file(cur, dataset, source, "applied", counts)
            if source.key.startswith(dataset.changes_prefix):
                cur.execute(ADVANCE_WATERMARK, {"key": source.key, "dataset": dataset.name})
        return counts
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()


def _write_staged(cur: psycopg.Cursor, dataset: Dataset, source: Source, counts: FileCounts) -> None:
    """Keep the rejected rows, upsert the rest; rows the database refuses are found and kept as rejected."""
    upsert = sql.SQL(UPSERT).format(table=dataset.table_identifier)
    params: dict[str, object] = {"source_file": source.name, "only_lines": None}
    while True:
        cur.execute(KEEP_REJECTED_ROWS, {"dataset": dataset.name, "key": source.key})
        kept = cur.rowcount
        try:
            with cur.connection.transaction():
                cur.execute(upsert, params)
                staged, latest, counts.inserted, counts.updated = cur.fetchone()
            break
        except psycopg.Error as error:
            if not refused_by_data(error):
                raise
            refused = _refused_rows(cur, upsert, params, [line for (line,) in cur.execute(FOLDED_LINES)])
            if not refused:
                raise RejectedFile(source.key, None,
                                   f"the database refuses the file: {settings.describe_db_error(error)}") from None
            for line, reason in refused:
                cur.execute(REFUSE_ROW, {"line": line, "reason": reason})
            counts.staged -= len(refused)
            counts.rows_rejected += len(refused)
    # The engine's own check that what the reader counted is what the database holds.
    if kept != counts.rows_rejected or staged != counts.staged:
        raise RejectedFile(source.key, None,
                           f"records do not add up: the reader counted {counts.staged} staged and "
                           f"{counts.rows_rejected} rejected rows, the database holds {staged} and {kept}")
    counts.duplicates = staged - latest
    counts.stale = latest - counts.inserted - counts.updated


def _refused_rows(cur: psycopg.Cursor, upsert: sql.Composed, params: dict[str, object],
                  lines: list[int]) -> list[tuple[int, str]]:
    """The lines among `lines` whose write the database refuses, each with its reason, by bisection.

    Every probe is rolled back; k bad rows among n cost about 2·k·log2(n) probes.
    """
    try:
        with cur.connection.transaction(force_rollback=True):
            cur.execute(upsert, {**params, "only_lines": lines})
        return []
    except psycopg.Error as error:
        if not refused_by_data(error):
            raise
        if len(lines) == 1:
            return [(lines[0], f"the database refused this row: {settings.describe_db_error(error)}")]
    middle = len(lines) // 2
    return _refused_rows(cur, upsert, params, lines[:middle]) + _refused_rows(cur, upsert, params, lines[middle:])


def record_file(cur: psycopg.Cursor, dataset: Dataset, source: Source, status: str, counts: FileCounts,
                error: str | None = None) -> None:
    cur.execute(RECORD_FILE, {
        "dataset": dataset.name, "key": source.key, "etag": source.etag, "size": source.size, "status": status,
        "error": error, **{name: getattr(counts, name) for name in FileCounts.__dataclass_fields__},
    })


class Ingest:
    """One run over one dataset: the files to apply, in order, and what became of each."""

    def __init__(self, conn: psycopg.Connection, dataset: Dataset, *, apply: bool, log: Log,
                 bucket: Bucket | None = None) -> None:
        self.conn = conn
        self.dataset = dataset
        self.apply = apply
        self.log = log
        self.bucket = bucket
        self.report = RunReport()

    # -- the bucket ----------------------------------------------------------

    def bucket_sources(self, *, reseed: bool) -> list[tuple[Source, str]]:
        """Files of changes/ to act on, oldest first, each with what to do: 'apply', 'archive' or 'reject'."""
        assert self.bucket is not None
        listed = self.bucket.list(self.dataset.changes_prefix)
        fault("after_list")
        stamped: list[tuple[str, StoredObject]] = []
        for obj in listed:
            match = self.dataset.key_pattern.fullmatch(obj.key)
            if match:
                stamped.append((match["stamp"], obj))
            else:
                self.log.warn(f"ignoring {obj.key!r}: not a change file name (expected "
                              f"{self.dataset.changes_prefix}YYYY-MM-DDTHH-MM-SS.csv); left where it is")
        stamped.sort(key=lambda pair: (pair[0], pair[1].key))

        with _database_errors(self.conn, "reading the ledger"):
            ledger: dict[str, dict[str, str]] = {}
            for key, etag, status in self.conn.execute(
                    "SELECT key, etag, status FROM tickets.ingest_files WHERE dataset = %s AND key = ANY(%s)",
                    (self.dataset.name, [obj.key for _, obj in stamped])):
                ledger.setdefault(key, {})[etag] = status
            watermark = self.conn.execute(
                "SELECT metadata->>'source_max_key' FROM tickets.import_meta WHERE dataset = %s",
                (self.dataset.name,)).fetchone()
        watermark_key = watermark[0] if watermark else None

        if self.apply:
            self.reconcile_archived({obj.key for obj in listed})

        plan = []
        for _stamp, obj in stamped:
            seen = ledger.get(obj.key, {})
            source = Source(obj.key, obj.etag, obj.size,
                            lambda key=obj.key, etag=obj.etag: self.bucket.open(key, etag),
                            rewritten=bool(set(seen) - {obj.etag}))
            if obj.etag in seen and not reseed:
                plan.append((source, "archive" if seen[obj.etag] == "applied" else "reject"))
                continue
            if seen and obj.etag not in seen:
                self.log.warn(f"{obj.key} was rewritten by the export (new ETag): applying it as a new file")
            elif not seen and watermark_key and obj.key <= watermark_key:
                self.log.warn(f"{obj.key} arrived late (at or below the watermark {watermark_key}): applying it")
            plan.append((source, "apply"))
        return plan

    def reconcile_archived(self, listed: set[str]) -> None:
        """Applied files gone from changes/ were archived by a run that died before recording it."""
        with _database_errors(self.conn, "reconciling the ledger with the bucket"):
            self.conn.execute("""
                UPDATE tickets.ingest_files SET archived_at = now()
                WHERE dataset = %s AND status = 'applied' AND archived_at IS NULL
                  AND key LIKE %s AND NOT key = ANY(%s)""",
                (self.dataset.name, self.dataset.changes_prefix + "%", list(listed)))

    def archive(self, source: Source) -> None:
        """Move an applied file to processed/: copy first, so a crash never loses it."""
        if not self.apply or self.bucket is None:
            return
        destination = self.dataset.processed_prefix + source.archived_name
        try:
            self.bucket.copy(source.key, source.etag, destination)
            fault("after_copy_object")
            self.bucket.delete(source.key, source.etag)
        except ObjectChanged:
            self.warn_changed(source)
            return
        except FleetError as error:
            self.report.errors.append(str(error))
            self.log.error(f"{error}; {source.key} stays in changes/ and is archived (not re-applied) next run")
            return
        with _database_errors(self.conn, f"recording that {source.key} was archived"):
            self.conn.execute("UPDATE tickets.ingest_files SET archived_at = now() "
                              "WHERE dataset = %s AND key = %s AND etag = %s",
                              (self.dataset.name, source.key, source.etag))
        self.report.files_archived += 1

    def move_rejected(self, source: Source, reason: str) -> None:
        """Move a rejected file to rejected/ with a .error.txt beside it saying what is wrong."""
        if not self.apply or self.bucket is None:
            return
        destination = self.dataset.rejected_prefix + source.archived_name
        try:
            self.bucket.copy(source.key, source.etag, destination)
            self.bucket.put_text(destination + ".error.txt", f"{source.key}\n{reason}\n")
            self.bucket.delete(source.key, source.etag)
        except ObjectChanged:
            self.warn_changed(source)
            return
        except FleetError as error:
            self.report.errors.append(str(error))
            self.log.error(f"{error}; {source.key} stays in changes/ and is moved to rejected/ next run")

    def warn_changed(self, source: Source) -> None:
        self.log.warn(f"{source.key} was rewritten by the export during this run (it no longer holds ETag "
                      f"{source.etag}): left in changes/, the next run applies the new version")

    # -- applying ------------------------------------------------------------

    def apply_source(self, source: Source) -> None:
        """Apply one file in its own transaction (a savepoint in a dry run) and report it."""
        started = time.perf_counter()
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                with _database_errors(self.conn, f"applying {source.key}"), self.conn.transaction():
                    counts = load_file(self.conn, self.dataset, source)
                    fault("before_commit")
                break
            except RejectedFile as rejected:
                self.reject(source, rejected)
                return
            except StorageUnavailable as error:
                raise RunAborted(f"{error}; {WHAT_STAYS}") from None
            except ObjectChanged:
                self.warn_changed(source)
                return
            except TransferError as error:
                if attempt == READ_ATTEMPTS:
                    self.fail(source, str(error))
                    return
                self.log.warn(f"{error}; reading it again ({attempt}/{READ_ATTEMPTS - 1})")
                time.sleep(attempt)
            except StorageError as error:
                self.fail(source, str(error))
                return
            except psycopg.Error as error:
                # Rolled back. Refused for its content (not pinned to a row): it
                # would fail on every run, so it is quarantined. Otherwise it is
                # the moment (a deadlock, a timeout), and the next run retries it.
                if refused_by_data(error):
                    self.reject(source, RejectedFile(
                        source.key, None, f"the database refuses the file: {settings.describe_db_error(error)}"))
                else:
                    self.fail(source, f"the database refused {source.key}: {settings.describe_db_error(error)}")
                return
        fault("after_commit")
        elapsed_ms = (time.perf_counter() - started) * 1000
        verb = "applied" if self.apply else "would apply"
        self.log.info(f"{verb} {source.name}: {describe_counts(counts)} ({elapsed_ms:.0f} ms)")
        self.report.files_applied += 1
        self.report.rows.add(counts)
        self.archive(source)

    def fail(self, source: Source, message: str) -> None:
        self.report.files_failed += 1
        self.report.errors.append(message)
        self.log.error(f"{message}; {source.key} stays in changes/ for the next run")

    def reject(self, source: Source, rejected: RejectedFile) -> None:
        self.report.files_rejected += 1
        verb = "rejected" if self.apply else "would reject"
        self.log.error(f"{verb} {rejected}")
        with _database_errors(self.conn, f"recording the rejection of {source.key}"), self.conn.transaction(), \
                self.conn.cursor() as cur:
            record_file(cur, self.dataset, source, "rejected", FileCounts(), rejected.where)
        self.move_rejected(source, rejected.where)

    def finish_rejection(self, source: Source) -> None:
        """A run died after recording a rejection but before moving the file: move it now."""
        error = self.conn.execute(
            "SELECT error FROM tickets.ingest_files WHERE dataset = %s AND key = %s AND etag = %s",
            (self.dataset.name, source.key, source.etag)).fetchone()[0]
        self.log.info(f"moving {source.name} to rejected/ (rejected by an earlier run: {error})")
        self.move_rejected(source, error or "rejected")

    def run(self, plan: Sequence[tuple[Source, str]], *, show_progress: bool = False) -> RunReport:
        # A dry run applies everything in one transaction that is rolled back at
        # the end, each file in a savepoint: its counts see the files before it.
        with self.conn.transaction(force_rollback=True) if not self.apply else nullcontext():
            for number, (source, action) in enumerate(plan, start=1):
                if show_progress:
                    print(f"\r[{number}/{len(plan)}] {source.name}", end="", file=sys.stderr, flush=True)
                if action == "apply":
                    self.apply_source(source)
                elif action == "archive":
                    self.report.files_skipped += 1
                    if self.apply:
                        self.log.info(f"archiving {source.name}: already applied by an earlier run "
                                      "(same ETag), not applied again")
                    self.archive(source)
                else:
                    self.report.files_skipped += 1
                    if self.apply:
                        self.finish_rejection(source)
            if show_progress and plan:
                print(file=sys.stderr)
        return self.report


# -- the run as a whole --------------------------------------------------------

def try_lock(conn: psycopg.Connection, dataset: Dataset) -> bool:
    return conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                        (settings.LOCK_NAMESPACE, dataset.lock_id)).fetchone()[0]


def start_run_log(conn: psycopg.Connection, dataset: Dataset, mode: str) -> int:
    return conn.execute("INSERT INTO tickets.ingest_runs (dataset, mode) VALUES (%s, %s) RETURNING run_id",
                        (dataset.name, mode)).fetchone()[0]


def finish_run_log(conn: psycopg.Connection, dataset: Dataset, run_id: int, report: RunReport) -> None:
    """Close the run's log row; after a lost connection, on a new one if the database is back."""
    if not (conn.broken or conn.closed):
        _write_run_log(conn, dataset, run_id, report)
        return
    try:
        with settings.connect(attempts=1) as fresh:
            _write_run_log(fresh, dataset, run_id, report)
    except (FleetError, psycopg.Error):
        pass  # the row stays 'running', which --status shows as a run that died


def _write_run_log(conn: psycopg.Connection, dataset: Dataset, run_id: int, report: RunReport) -> None:
    rows = report.rows
    with conn.transaction():
        conn.execute("""
            UPDATE tickets.ingest_runs
            SET finished_at = clock_timestamp(), status = %s, files_applied = %s, files_archived = %s,
                files_rejected = %s, rows_inserted = %s, rows_updated = %s, rows_stale = %s, rows_rejected = %s,
                error = %s
            WHERE run_id = %s""",
            ("ok" if report.ok else "failed", report.files_applied, report.files_archived, report.files_rejected,
             rows.inserted, rows.updated, rows.stale, rows.rows_rejected,
             "; ".join(report.errors) or None, run_id))
        stamp = "last_success_at" if report.ok else "last_failure_at"
        conn.execute("""UPDATE tickets.import_meta
                        SET metadata = metadata || jsonb_build_object('last_run_at', now(), %s::text, now()),
                            updated_at = now()
                        WHERE dataset = %s""", (stamp, dataset.name))


def local_sources(paths: Sequence[Path]) -> list[tuple[Source, str]]:
    """Local files in key order (their names are export timestamps), all to apply."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FleetError(f"no such file: {', '.join(missing)}")
    ordered = sorted((p.resolve() for p in paths), key=lambda p: (p.name, str(p)))
    return [(Source(f"file:{p}", "", p.stat().st_size, lambda p=p: p.open("rb")), "apply") for p in ordered]


def ingest(dataset: Dataset, *, apply: bool, reseed: bool = False, local_files: Sequence[Path] = ()) -> int:
    """One run: lock, plan, apply, archive, log, post_apply. Returns the exit code."""
    log = Log(dataset.name)
    bucket = None
    if not local_files:
        from bucket import Bucket

        bucket = Bucket.from_env()
    with settings.connect() as conn:
        if not try_lock(conn, dataset):
            log.info("another run of this dataset holds the lock; nothing to do (this is normal when runs overlap)")
            return 0
        conn.execute(STAGING_DDL)
        runner = Ingest(conn, dataset, apply=apply, log=log, bucket=bucket)
        plan = local_sources(local_files) if local_files else runner.bucket_sources(reseed=reseed)
        run_id = start_run_log(conn, dataset, "reseed" if reseed else "local" if local_files else "bucket") \
            if apply else None
        try:
            report = runner.run(plan, show_progress=reseed and sys.stderr.isatty())
        except RunAborted as aborted:
            runner.report.errors.append(str(aborted))
            raise
        finally:
            if run_id is not None:
                finish_run_log(conn, dataset, run_id, runner.report)
        if apply and dataset.post_apply:
            with _database_errors(conn, "running the post-apply step"), conn.transaction():
                outcome = dataset.post_apply(conn)
                fault("mid_post_apply")
            if outcome:
                log.info(outcome)
        summarize(log, report, apply=apply, files_listed=len(plan))
        return 0 if report.ok else 1


def summarize(log: Log, report: RunReport, *, apply: bool, files_listed: int) -> None:
    rows = report.rows
    if files_listed == 0:
        log.info("nothing new: no change files waiting")
        return
    lead = "done" if apply else "dry run, nothing written or moved"
    log.info(f"{lead}: {report.files_applied} files applied, {report.files_archived} archived, "
             f"{report.files_rejected} rejected, {report.files_failed} failed, "
             f"{report.files_skipped} already applied; rows: {rows.inserted} new, {rows.updated} updated, "
             f"{rows.stale} stale, {rows.rows_rejected} rejected")


# -- --status ------------------------------------------------------------------

def print_status(dataset: Dataset) -> int:
    with settings.connect() as conn:
        conn.execute("SET TIME ZONE 'Africa/Nairobi'")  # operators read EAT
        metadata = conn.execute("""
            SELECT metadata->>'source_max_key', (metadata->>'last_success_at')::timestamptz,
                   (metadata->>'last_failure_at')::timestamptz
            FROM tickets.import_meta WHERE dataset = %s""", (dataset.name,)).fetchone() or (None, None, None)
        newest = conn.execute("""
            SELECT key, applied_at, now() - applied_at, now() FROM tickets.ingest_files
            WHERE dataset = %s AND status = 'applied' AND key LIKE %s
            ORDER BY key COLLATE "C" DESC LIMIT 1""", (dataset.name, dataset.changes_prefix + "%")).fetchone()
        counts = conn.execute(sql.SQL("""
            SELECT count(*), count(*) FILTER (WHERE bucket = 'open'), count(geom)
            FROM {}""").format(dataset.table_identifier)).fetchone()
        pending_archive = conn.execute("""SELECT count(*) FROM tickets.ingest_files
                                          WHERE dataset = %s AND status = 'applied' AND archived_at IS NULL
                                            AND key NOT LIKE 'file:%%'""", (dataset.name,)).fetchone()[0]
        rejected = conn.execute("SELECT count(*) FROM tickets.ingest_files WHERE dataset = %s AND status = 'rejected'",
                                (dataset.name,)).fetchone()[0]
        rejected_rows = conn.execute("SELECT count(*) FROM tickets.rejected_rows WHERE dataset = %s",
                                     (dataset.name,)).fetchone()[0]
        runs = conn.execute("""
            SELECT started_at, finished_at - started_at, status, files_applied, files_rejected,
                   rows_inserted, rows_updated, error
            FROM tickets.ingest_runs WHERE dataset = %s ORDER BY run_id DESC LIMIT 5""", (dataset.name,)).fetchall()

    print(f"{dataset.name}: {dataset.table}")
    watermark, last_success, last_failure = metadata
    print(f"  watermark        {watermark or '(none: nothing applied from the bucket yet)'}")
    if newest:
        key, applied_at, since_applied, current = newest
        exported = dt.datetime.strptime(dataset.key_pattern.fullmatch(key)["stamp"], "%Y-%m-%dT%H-%M-%S").replace(
            tzinfo=current.tzinfo)
        print(f"  newest applied   {key}: exported {exported:%Y-%m-%d %H:%M} EAT ({_age(current - exported)} ago), "
              f"applied {applied_at:%Y-%m-%d %H:%M} EAT ({_age(since_applied)} ago)")
    print(f"  last success     {f'{last_success:%Y-%m-%d %H:%M} EAT' if last_success else 'never'}"
          + (f" (last failure {last_failure:%Y-%m-%d %H:%M} EAT)" if last_failure else ""))
    print(f"  tickets          {counts[0]} ({counts[1]} open, {counts[2]} with a point)")
    print(f"  files            {rejected} rejected, {pending_archive} applied but not yet archived; "
          f"{rejected_rows} rejected rows kept")
    print("  last runs")
    for started, took, status, applied, rejected_files, inserted, updated, error in runs:
        state = status if status != "running" or took else "running (or died)"
        took_s = f"{took.total_seconds():.1f} s" if took else "-"
        print(f"    {started:%Y-%m-%d %H:%M} EAT {state:8} {took_s:>8}  {applied} files, {rejected_files} rejected, "
              f"{inserted} new, {updated} updated{'  ' + error if error else ''}")
    if not runs:
        print("    (none)")
    return 0


def _age(delta: object) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


# -- the command line ----------------------------------------------------------

def build_parser(dataset: Dataset, commands: Sequence[Command] = ()) -> argparse.ArgumentParser:
    name = dataset.name
    parser = argparse.ArgumentParser(
        prog=f"python -m {name}.import_{name}",
        description=f"Drain {name.upper()} change files into {dataset.table}. Without --apply it is a dry run.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-bucket", action="store_true",
                        help=f"read new files from {dataset.changes_prefix} and archive them once applied")
    source.add_argument(f"--{name}-csv", dest="csv", metavar="FILE", nargs="+", type=Path,
                        help="apply local change files instead (in file-name order; nothing is archived)")
    parser.add_argument("--reseed", action="store_true",
                        help="with --from-bucket: apply every file in changes/ again, ignoring the ledger "
                             "(tickets already current stay unchanged)")
    parser.add_argument("--apply", action="store_true",
                        help="write to the database and move files; without it nothing is written or moved")
    parser.add_argument("--status", action="store_true",
                        help="print the watermark, newest file, last runs and row counts, then exit")
    for command in commands:
        if command.metavar:
            parser.add_argument(command.flag, metavar=command.metavar, type=Path, help=command.help)
        else:
            parser.add_argument(command.flag, action="store_true", help=command.help)
    return parser


def main(dataset: Dataset, argv: Sequence[str] | None = None, commands: Sequence[Command] = ()) -> int:
    """The whole CLI of a dataset; the only place that turns exceptions into exit codes."""
    parser = build_parser(dataset, commands)
    args = parser.parse_args(argv)
    chosen = [command for command in commands if getattr(args, command.dest)]
    if len(chosen) > 1 or (chosen and (args.from_bucket or args.csv or args.status)):
        parser.error("one action at a time: " + ", ".join(c.flag for c in chosen) + " goes on its own (with --apply)")
    if args.reseed and not args.from_bucket:
        parser.error("--reseed works on the bucket: add --from-bucket")
    log = Log(dataset.name)
    try:
        if args.status:
            return print_status(dataset)
        if chosen:
            return chosen[0].run(args)
        if not (args.from_bucket or args.csv):
            parser.error(f"say where the files are: --from-bucket or --{dataset.name}-csv FILE")
        return ingest(dataset, apply=args.apply, reseed=args.reseed, local_files=args.csv or ())
    except FleetError as error:
        log.error(str(error))
        return 1
    except psycopg.errors.UndefinedTable as error:
        log.error(f"database: {settings.describe_db_error(error)} (run the migrations: python run_migrations.py)")
        return 1
    except psycopg.Error as error:
        log.error(f"database: {settings.describe_db_error(error)}")
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; every file committed so far stays applied")
        return 130
