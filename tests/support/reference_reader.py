"""What a change file holds, read straight from the source contract with stdlib csv, sharing nothing with the engine.

The reader under test (changefile.py) streams bytes line by line with bounded
memory; this one decodes the whole file at once and restates the contract's
rules in the simplest form, so the two can be compared on any input.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

DROPPED_COLUMNS = {"week_start", "week_end", "source_s3_bucket", "source_s3_key", "source_snapshot_id",
                   "department", "source_type"}
MAX_COLUMNS = 1000


@dataclass
class Reading:
    rejected: bool = False
    """The file as a whole cannot be applied."""
    staged: list[tuple[int, str, dict]] = field(default_factory=list)
    """(line, ticket_id, raw) of every row to apply, in file order."""
    rejected_lines: list[int] = field(default_factory=list)
    alarms: int = 0
    sentinels: int = 0
    blank_lines: int = 0


# Timestamps, booleans, numbers and coordinates: trimmed before anything parses them.
TYPED_COLUMNS = ("created_at_service", "scheduled_at", "closed_at", "first_seen_at", "last_seen_at",
                 "source_created_at", "source_updated_at", "is_actionable", "is_auto_created", "is_auto_closed",
                 "mttr", "latitude", "longitude")

def _blank(record: list[str]) -> bool:
    return all(value.strip() == "" for value in record) and len(record) <= 1


def _null_if_blank(value: str) -> str | None:
    return None if value.strip() == "" else value


def read_reference(content: bytes, prefix: str) -> Reading:
    reading = Reading()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return Reading(rejected=True)
    # The contract's lines end in LF or CRLF; a lone CR belongs to a field.
    lines = re.split(r"(?<=\n)", text)
    reader = csv.reader([line for line in lines if line], strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:
            return Reading(rejected=True)
        if _blank(record):
            reading.blank_lines += 1
            continue
        if header is None:
            # A byte-order mark opens the header even when blank lines came first.
            header = [name.strip() for name in [record[0].lstrip("\ufeff"), *record[1:]]]
            if (len(header) > MAX_COLUMNS or "ticket_id" not in header or len(set(header)) != len(header)
                    or any("\x00" in name for name in header)):
                return Reading(rejected=True)
            continue
        row = dict(zip(header, record, strict=False))
        ticket_id = (row.get("ticket_id") or "").strip()
        if ticket_id.startswith("EXPORT STOPPED"):
            reading.sentinels += 1
        elif (len(record) != len(header) or re.fullmatch(prefix + "[0-9]{12}", ticket_id) is None
              or any("\x00" in value for value in record)):
            reading.rejected_lines.append(start)
        elif (row.get("is_alarm") or "").strip().lower() in {"true", "t", "1"}:
            reading.alarms += 1
        else:
            raw = {name: _null_if_blank(value) for name, value in row.items() if name not in DROPPED_COLUMNS}
            raw["ticket_id"] = ticket_id
            for typed in TYPED_COLUMNS:
                if raw.get(typed) is not None:
                    raw[typed] = raw[typed].strip()
            if raw.get("region") is not None:
                raw["region"] = raw["region"].strip().lower()
            if raw.get("raw_status") is not None:
                raw["raw_status"] = raw["raw_status"].strip().upper()
            reading.staged.append((start, ticket_id, raw))
    return reading
