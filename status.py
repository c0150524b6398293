"""--status: where a dataset stands, read from the ledger, the run log and its table, in EAT."""

from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

import database
from dataset import STAMP_FORMAT, Dataset

OPERATORS_READ_EAT = "SET TIME ZONE 'Africa/Nairobi'"

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

TICKET_COUNTS = "SELECT count(*), count(*) FILTER (WHERE bucket = 'open'), count(geom) FROM {table}"

FILE_COUNTS = """
SELECT (SELECT count(*) FROM tickets.ingest_files WHERE dataset = %(dataset)s AND status = 'rejected'),
       (SELECT count(*) FROM tickets.ingest_files
        WHERE dataset = %(dataset)s AND status = 'applied' AND archived_at IS NULL AND key NOT LIKE 'file:%%'),
       (SELECT count(*) FROM tickets.rejected_rows WHERE dataset = %(dataset)s)
"""

LAST_RUNS = """
SELECT started_at, finished_at - started_at, status, files_applied, files_rejected, rows_inserted, rows_updated, error
FROM tickets.ingest_runs WHERE dataset = %s ORDER BY run_id DESC LIMIT 5
"""


def print_status(dataset: Dataset) -> int:
    with database.connect() as conn:
        conn.execute(OPERATORS_READ_EAT)
        watermark, last_success, last_failure = conn.execute(META, (dataset.name,)).fetchone() or (None, None, None)
        newest = conn.execute(NEWEST_APPLIED, (dataset.name, dataset.changes_prefix + "%")).fetchone()
        tickets, open_tickets, placed = _one(conn, sql.SQL(TICKET_COUNTS).format(table=dataset.table_identifier))
        rejected_files, pending_archive, rejected_rows = _one(conn, FILE_COUNTS, {"dataset": dataset.name})
        runs = conn.execute(LAST_RUNS, (dataset.name,)).fetchall()

    print(f"{dataset.name}: {dataset.table}")
    print(f"  watermark        {watermark or '(none: nothing applied from the bucket yet)'}")
    if newest:
        key, applied_at, since_applied, now = newest
        stamp = dataset.key_pattern.fullmatch(key)
        if stamp:
            exported = dt.datetime.strptime(stamp["stamp"], STAMP_FORMAT).replace(tzinfo=now.tzinfo)
            print(f"  newest applied   {key}: exported {exported:%Y-%m-%d %H:%M} EAT ({age(now - exported)} ago), "
                  f"applied {applied_at:%Y-%m-%d %H:%M} EAT ({age(since_applied)} ago)")
    print(f"  last success     {f'{last_success:%Y-%m-%d %H:%M} EAT' if last_success else 'never'}"
          + (f" (last failure {last_failure:%Y-%m-%d %H:%M} EAT)" if last_failure else ""))
    print(f"  tickets          {tickets} ({open_tickets} open, {placed} with a point)")
    print(f"  files            {rejected_files} rejected, {pending_archive} applied but not yet archived; "
          f"{rejected_rows} rejected rows kept")
    print("  last runs")
    for started, took, state, applied, rejected, inserted, updated, error in runs:
        shown = state if state != "running" or took else "running (or died)"
        took_s = f"{took.total_seconds():.1f} s" if took else "-"
        print(f"    {started:%Y-%m-%d %H:%M} EAT {shown:8} {took_s:>8}  {applied} files, {rejected} rejected, "
              f"{inserted} new, {updated} updated{'  ' + error if error else ''}")
    if not runs:
        print("    (none)")
    return 0


def _one(conn: psycopg.Connection, query: str | sql.Composed, params: tuple | dict = ()) -> tuple:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
