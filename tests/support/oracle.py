"""The reference state, computed independently of the engine in plain Python.

Given the files that were applied, it says what every ticket must look like:
the newest non-alarm version by source_updated_at, later file then later row
breaking ties, cleaned as the source contract says. A version whose
source_updated_at does not parse (after trimming) is ordered by the export
time in its file's name: the export held the ticket as it stood then.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable

DROPPED = {"week_start", "week_end", "source_s3_bucket", "source_s3_key", "source_snapshot_id", "department",
           "source_type"}
FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f")


# 7 to 9 fractional digits (SQL Server's datetime2 writes 7) are cut to the microseconds a timestamp holds.
BEYOND_MICROSECONDS = re.compile(r"^(.{19}\.[0-9]{6})[0-9]{1,3}$")


def parse_eat(value: str | None) -> dt.datetime | None:
    value = BEYOND_MICROSECONDS.sub(r"\1", value or "")
    for fmt in FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


TYPED = {"created_at_service", "scheduled_at", "closed_at", "first_seen_at", "last_seen_at", "source_created_at",
         "source_updated_at", "is_actionable", "is_auto_created", "is_auto_closed", "mttr", "latitude", "longitude"}


def clean(name: str, value: str) -> str | None:
    if value.strip() == "":
        return None
    if name in TYPED:
        return value.strip()
    return {"region": value.strip().lower(), "raw_status": value.strip().upper()}.get(name, value)


def export_time(name: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(name.split(".")[0], "%Y-%m-%dT%H-%M-%S")
    except ValueError:
        return dt.datetime.min


def reference_state(files: Iterable[tuple[str, bytes]], prefix: str) -> dict[str, dict]:
    """files: (file name, content) of every applied file, in any order — except that versions of one name (a key
    the export rewrote) come in the order they were applied: on an equal time, a later version's rows win."""
    best: dict[str, tuple[tuple, dict]] = {}
    versions: dict[str, int] = {}
    for name, content in files:
        version = versions[name] = versions.get(name, -1) + 1
        text = content.decode("utf-8-sig")
        for index, record in enumerate(csv.DictReader(io.StringIO(text, newline=""))):
            ticket_id = (record.get("ticket_id") or "").strip()
            if ticket_id.startswith("EXPORT STOPPED") or None in record or None in record.values():
                continue
            if not (ticket_id.startswith(prefix) and len(ticket_id) == len(prefix) + 12
                    and ticket_id[len(prefix):].isdigit()):
                continue
            if (record.get("is_alarm") or "").strip().lower() in {"true", "t", "1"}:
                continue
            row = {k.strip(): clean(k.strip(), v) for k, v in record.items() if k.strip() not in DROPPED}
            row["ticket_id"] = ticket_id
            rank = (parse_eat(row.get("source_updated_at")) or export_time(name), name, version, index)
            if ticket_id not in best or rank > best[ticket_id][0]:
                best[ticket_id] = (rank, row)
    return {ticket_id: row for ticket_id, (_rank, row) in best.items()}
