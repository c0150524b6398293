"""Applying change files inside the caller's transaction, a batch at a time: stream, stage, fold, upsert, record.

Each file is read record by record (changefile.py) and COPYed into a staging
table, never held in memory; a batch stages several files, each in a
savepoint, so one that cannot be read leaves the others staged. Rows the
reader rejected are kept in tickets.rejected_rows; the rest are folded to one
version per ticket across the whole batch (newest source_updated_at, then
later file, then later row) and upserted once, so that an older version never
overwrites a newer one. A row the database refuses for its content is found by
bisection and kept as rejected; what the reader counted must be what the
database holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from fleettickets import ledger, sourcetime
from fleettickets.changefile import ChangeFile, FileCounts, RejectedFile, Source
from fleettickets.database import describe_error, refused_by_data
from fleettickets.dataset import Dataset
from fleettickets.faults import fault
from fleettickets.report import TicketCounts
from fleettickets.settings import RunLimits

STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (
    seq           integer NOT NULL,
    file_no       integer NOT NULL,
    line          integer NOT NULL,
    ticket_id     text,
    raw           text,
    updated_text  text,
    updated_at    timestamptz GENERATED ALWAYS AS (tickets.eat_ts(updated_text)) STORED,
    reject_reason text,
    raw_text      text
);
CREATE TEMP TABLE IF NOT EXISTS ingest_batch_files (
    file_no     integer PRIMARY KEY,
    key         text NOT NULL,
    name        text NOT NULL,
    exported_at timestamptz
)
"""

CLEAR_STAGE = "TRUNCATE ingest_stage, ingest_batch_files"

ADD_FILE = "INSERT INTO ingest_batch_files (file_no, key, name, exported_at) VALUES (%s, %s, %s, %s)"

COPY_INTO_STAGE = ("COPY ingest_stage (seq, file_no, line, ticket_id, raw, updated_text, reject_reason, raw_text) "
                   "FROM STDIN")

# Staged rows keep raw as the reader wrote it (JSON text) and its source_updated_at beside it: only the version a
# batch keeps of each ticket is parsed into jsonb (latest, below), a third of the rows staged in a replay, and the
# fold sorts narrow rows. Every staged row's instant (eat_ts of the text raw->>'source_updated_at' would give) is
# computed once, by the server while the COPY streams in (it waits on the reader's parsing meanwhile); the fold
# and the batch's counts all read it.
STAGED = """
SELECT s.seq, s.file_no, s.ticket_id, s.line, s.updated_at
FROM ingest_stage AS s
WHERE s.reject_reason IS NULL
"""

# The batch's version of each ticket: its newest source_updated_at, then the
# later file (names are export times), then the later row. A version without a
# readable source_updated_at is ordered by its file's export time: the export
# held the ticket as it stood then, so it is at least as new as any version
# updated before (source-format: on a tie the later file wins). Reads `staged`.
FOLDED = """
SELECT DISTINCT ON (s.ticket_id) s.ticket_id, s.line, s.seq, f.name AS file_name,
       COALESCE(s.updated_at, f.exported_at, '-infinity') AS version_at
FROM staged AS s JOIN ingest_batch_files AS f USING (file_no)
ORDER BY s.ticket_id, version_at DESC, f.name COLLATE "C" DESC, s.line DESC
"""

# Versions are compared as (version_at, file name, line): on equal
# timestamps the later file wins, within a file the later row. A key the
# export rewrote is its later word on the same moment: on an equal timestamp
# and file name, a row that differs from the stored one replaces it whatever
# its line. Updating and
# inserting in two steps (rather than INSERT … ON CONFLICT) runs the geom
# trigger once per row instead of twice for every update; it is safe because
# the dataset's advisory lock makes this the only writer of the table.
# only_rows (NULL for all) limits the write to some rows of the folded set,
# to find the rows the database refuses; raw becomes jsonb after that choice, so a
# row whose JSON the database refuses is found like any other.
UPSERT = """
WITH staged AS MATERIALIZED (""" + STAGED + """), folded AS (""" + FOLDED + """), latest AS (
    SELECT l.ticket_id, l.line, l.seq, l.file_name, l.version_at, s.raw::jsonb AS raw
    FROM folded AS l JOIN ingest_stage AS s USING (seq)
    WHERE %(only_rows)s::integer[] IS NULL OR l.seq = ANY(%(only_rows)s::integer[])
), updated AS (
    UPDATE {table} AS t
    SET raw = l.raw, source_file = l.file_name, source_line = l.line, ingested_at = now(),
        version_at = NULLIF(l.version_at, '-infinity')
    FROM latest AS l
    WHERE t.ticket_id = l.ticket_id
      AND ((l.version_at, l.file_name COLLATE "C", l.line)
           > (COALESCE(t.version_at, t.source_updated_at, '-infinity'), t.source_file COLLATE "C", t.source_line)
           OR (l.version_at, l.file_name) = (COALESCE(t.version_at, t.source_updated_at, '-infinity'), t.source_file)
              AND l.raw IS DISTINCT FROM t.raw)
    RETURNING 1
), inserted AS (
    INSERT INTO {table} (ticket_id, raw, source_file, source_line, version_at)
    SELECT l.ticket_id, l.raw, l.file_name, l.line, NULLIF(l.version_at, '-infinity')
    FROM latest AS l
    WHERE NOT EXISTS (SELECT FROM {table} AS t WHERE t.ticket_id = l.ticket_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM staged),
       (SELECT count(*) FROM latest),
       (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM updated),
       (SELECT count(*) FROM staged WHERE updated_at IS NULL)
"""

FOLDED_ROWS = "WITH staged AS (" + STAGED + ") SELECT seq FROM (" + FOLDED + ") AS folded ORDER BY seq"

REFUSE_ROW = """
UPDATE ingest_stage SET reject_reason = %(reason)s, raw_text = raw, raw = NULL, updated_text = NULL WHERE seq = %(seq)s
RETURNING file_no
"""

KEEP_REJECTED_ROWS = """
INSERT INTO tickets.rejected_rows (dataset, file_key, line, raw_text, reason)
SELECT %(dataset)s, f.key, s.line, s.raw_text, s.reject_reason
FROM ingest_stage AS s JOIN ingest_batch_files AS f USING (file_no)
WHERE s.reject_reason IS NOT NULL
ON CONFLICT (dataset, file_key, line) DO UPDATE
    SET raw_text = excluded.raw_text, reason = excluded.reason, recorded_at = now()
"""


def prepare(conn: psycopg.Connection) -> None:
    """Create this session's staging tables; once per run."""
    conn.execute(STAGING_DDL)


@dataclass
class Staged:
    source: Source
    counts: FileCounts


@dataclass
class Batch:
    """Files staged in one transaction, then written together: each ticket once."""

    conn: psycopg.Connection
    dataset: Dataset
    limits: RunLimits
    files: list[Staged] = field(default_factory=list)
    _rows: int = 0

    def __post_init__(self) -> None:
        self.conn.execute(CLEAR_STAGE)

    def stage(self, source: Source) -> FileCounts:
        """Stage one file in a savepoint; on any error nothing of it stays staged and the error is raised."""
        # An archived copy being caught up passed the limit in force when it was applied: the limit guards new
        # input, and a restored database must not lose a file that an operator once let through.
        if source.size is not None and source.size > self.limits.max_object_bytes and not source.archived_copy:
            raise RejectedFile(source.key, None,
                               f"{source.size} bytes, over the limit of {self.limits.max_object_bytes} bytes for one "
                               "file: raise FLEETTICKETS_MAX_OBJECT_BYTES, then copy it from rejected/ back to "
                               "changes/ under the same name")
        file_no = len(self.files)
        with self.conn.transaction(), source.open() as stream, self.conn.cursor() as cur:
            change_file = ChangeFile(stream, source.key, self.dataset.ticket_id_pattern,
                                     self.dataset.ticket_id_description)
            cur.execute(ADD_FILE, (file_no, source.key, source.name, sourcetime.export_time(source.name)))
            with cur.copy(COPY_INTO_STAGE) as copy:
                for seq, row in enumerate(change_file.rows(), start=self._rows):
                    copy.write_row((seq, file_no, *row))
                    if seq == self._rows:
                        fault("mid_copy")
            counts = change_file.counts
            # The engine's own check that the database received every row the reader counted.
            if cur.rowcount != counts.staged + counts.rows_rejected:
                raise RejectedFile(source.key, None, f"records do not add up: the reader yielded "
                                                     f"{counts.staged + counts.rows_rejected} rows, the database "
                                                     f"took {cur.rowcount}")
        self._rows += counts.staged + counts.rows_rejected
        self.files.append(Staged(source, counts))
        return counts

    def write(self) -> TicketCounts:
        """Keep the rejected rows, upsert the rest, record every file and the batch; rows the database refuses
        are found and kept as rejected (the files' counts say so)."""
        with self.conn.cursor() as cur:
            tickets = self._write_staged(cur)
            alone = len(self.files) == 1
            batch_id = ledger.record_batch(cur, self.dataset, len(self.files), tickets)
            for staged in self.files:
                ledger.record_file(cur, self.dataset, staged.source, "applied", staged.counts,
                                   tickets=tickets if alone else None, batch_id=batch_id)
            newest = max((s.source.key for s in self.files if s.source.key.startswith(self.dataset.changes_prefix)),
                         default=None)
            if newest:
                ledger.advance_watermark(cur, self.dataset, newest)
        return tickets

    def _write_staged(self, cur: psycopg.Cursor) -> TicketCounts:
        upsert = sql.SQL(UPSERT).format(table=self.dataset.table_identifier)
        while True:
            cur.execute(KEEP_REJECTED_ROWS, {"dataset": self.dataset.name})
            kept = cur.rowcount
            try:
                with cur.connection.transaction():
                    cur.execute(upsert, {"only_rows": None})
                    staged, latest, inserted, updated, untimed = cur.fetchone() or (0, 0, 0, 0, 0)
                break
            except psycopg.Error as error:
                if not refused_by_data(error):
                    raise
                refused = _refused_rows(cur, upsert, [seq for (seq,) in cur.execute(FOLDED_ROWS)])
                if not refused:
                    keys = ", ".join(s.source.key for s in self.files)
                    raise RejectedFile(keys, None, f"the database refuses the batch: {describe_error(error)}"
                                       ) from None
                for seq, reason in refused:
                    row = cur.execute(REFUSE_ROW, {"seq": seq, "reason": reason}).fetchone()
                    assert row is not None
                    counts = self.files[row[0]].counts
                    counts.staged -= 1
                    counts.rows_rejected += 1
        rejected = sum(s.counts.rows_rejected for s in self.files)
        expected = sum(s.counts.staged for s in self.files)
        if kept != rejected or staged != expected:
            raise RejectedFile(", ".join(s.source.key for s in self.files), None,
                               f"records do not add up: the reader counted {expected} staged and {rejected} rejected "
                               f"rows, the database holds {staged} and {kept}")
        return TicketCounts(staged=staged, duplicates=staged - latest, inserted=inserted, updated=updated,
                            stale=latest - inserted - updated, untimed=untimed)


def _refused_rows(cur: psycopg.Cursor, upsert: sql.Composed, rows: list[int]) -> list[tuple[int, str]]:
    """The staged rows among `rows` whose write the database refuses, each with its reason, by bisection.

    Every probe is rolled back; k bad rows among n cost about 2·k·log2(n) probes.
    """
    try:
        with cur.connection.transaction(force_rollback=True):
            cur.execute(upsert, {"only_rows": rows})
        return []
    except psycopg.Error as error:
        if not refused_by_data(error):
            raise
        if len(rows) == 1:
            return [(rows[0], f"the database refused this row: {describe_error(error)}")]
    middle = len(rows) // 2
    return _refused_rows(cur, upsert, rows[:middle]) + _refused_rows(cur, upsert, rows[middle:])
