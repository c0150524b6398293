"""Applying one change file inside the caller's transaction: stream, stage, fold, upsert, record.

The file is read record by record (changefile.py) and COPYed into a staging
table, never held in memory. Rows the reader rejected are kept in
tickets.rejected_rows; the rest are folded to one version per ticket and
upserted so that an older version never overwrites a newer one. A row the
database refuses for its content is found by bisection and kept as rejected;
the counts the reader made must be what the database holds.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

import ledger
from changefile import ChangeFile, FileCounts, RejectedFile
from database import describe_error, refused_by_data
from dataset import Dataset
from faults import fault
from plan import Source
from settings import RunLimits

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    line          integer NOT NULL,
    ticket_id     text,
    raw           jsonb,
    reject_reason text,
    raw_text      text
)
"""

CLEAR_STAGE = "TRUNCATE ingest_stage"

COPY_INTO_STAGE = "COPY ingest_stage (line, ticket_id, raw, reject_reason, raw_text) FROM STDIN"

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


def prepare(conn: psycopg.Connection) -> None:
    """Create this session's staging table; once per run."""
    conn.execute(STAGING_DDL)


def load_file(conn: psycopg.Connection, dataset: Dataset, source: Source, limits: RunLimits) -> FileCounts:
    """Apply one file inside the caller's transaction; raises RejectedFile for an untrustworthy file."""
    if source.size is not None and source.size > limits.max_object_bytes:
        raise RejectedFile(source.key, None, f"{source.size} bytes, over the limit of {limits.max_object_bytes} "
                                             "bytes for one file (raise FLEETTICKETS_MAX_OBJECT_BYTES to apply it)")
    with source.open() as stream, conn.cursor() as cur:
        change_file = ChangeFile(stream, source.key, dataset.ticket_id_pattern, dataset.ticket_id_description)
        cur.execute(CLEAR_STAGE)
        with cur.copy(COPY_INTO_STAGE) as copy:
            for number, row in enumerate(change_file.rows()):
                copy.write_row(row)
                if number == 0:
                    fault("mid_copy")
        counts = change_file.counts
        _write_staged(cur, dataset, source, counts)
        ledger.record_file(cur, dataset, source, "applied", counts)
        if source.key.startswith(dataset.changes_prefix):
            ledger.advance_watermark(cur, dataset, source.key)
    return counts


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
                staged, latest, counts.inserted, counts.updated = cur.fetchone() or (0, 0, 0, 0)
            break
        except psycopg.Error as error:
            if not refused_by_data(error):
                raise
            refused = _refused_rows(cur, upsert, params, [line for (line,) in cur.execute(FOLDED_LINES)])
            if not refused:
                raise RejectedFile(source.key, None, f"the database refuses the file: {describe_error(error)}"
                                   ) from None
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
            return [(lines[0], f"the database refused this row: {describe_error(error)}")]
    middle = len(lines) // 2
    return _refused_rows(cur, upsert, params, lines[:middle]) + _refused_rows(cur, upsert, params, lines[middle:])
