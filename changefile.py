"""One change file of the ticket stream, read and cleaned as the source contract says.

`ChangeFile` turns a byte stream into staging rows one record at a time, so a
file of any size passes through in constant memory. A record that cannot be
applied is yielded with its reason (and kept by the caller); a file that cannot
be trusted as a whole raises `RejectedFile` naming the line.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from settings import FleetError

# Export bookkeeping that says nothing about the ticket; dropped before `raw`.
BOOKKEEPING_COLUMNS = frozenset({
    "week_start", "week_end", "source_s3_bucket", "source_s3_key", "source_snapshot_id", "department", "source_type",
})
SENTINEL_PREFIX = "EXPORT STOPPED"
ALARM_SPELLINGS = frozenset({"true", "t", "1"})

# The longest legitimate field is a free-text location of a few hundred bytes;
# 8 MiB leaves room for pasted notes while bounding what an unterminated quote
# (which swallows the rest of the file into one field) can make us hold.
MAX_FIELD_CHARS = 8 * 1024 * 1024
MAX_LINE_BYTES = 2 * MAX_FIELD_CHARS
READ_CHUNK_BYTES = 256 * 1024

csv.field_size_limit(MAX_FIELD_CHARS)


class RejectedFile(FleetError):
    """The file cannot be applied as a whole: not UTF-8, no ticket_id column, broken quoting."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}: line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclass
class FileCounts:
    """What reading and applying one file did; every number is a count of CSV records."""

    rows_read: int = 0
    alarms_dropped: int = 0
    sentinels: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    stale: int = 0

    def add(self, other: FileCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


StagedRow = tuple[int, str | None, str | None, str | None, str | None]
"""(line, ticket_id, raw json, reject reason, raw text): the staging table's columns."""


def _as_csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


@dataclass
class ChangeFile:
    """Streams the records of one change file as staging rows, counting as it goes."""

    stream: BinaryIO
    source: str
    """How the file is named in messages: its bucket key or local path."""
    ticket_id_pattern: re.Pattern[str]
    ticket_id_description: str
    """Human form of the pattern for messages, e.g. 'INC + 12 digits'."""
    counts: FileCounts = field(default_factory=FileCounts)
    _line: int = 0
    _saw_nul: bool = False

    def _text_lines(self) -> Iterator[str]:
        """Physical lines, decoded one at a time so a decoding error names its line."""
        pending = b""
        first = True
        while True:
            chunk = self.stream.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw_line in lines:
                yield self._decode(raw_line + b"\n", first)
                first = False
            if len(pending) > MAX_LINE_BYTES:
                raise RejectedFile(self.source, self._line + 1, f"a line longer than {MAX_LINE_BYTES} bytes")
        if pending:
            yield self._decode(pending, first)

    def _decode(self, raw_line: bytes, first: bool) -> str:
        self._line += 1
        if b"\x00" in raw_line:
            self._saw_nul = True  # rare: only then are fields searched for it
        try:
            return raw_line.decode("utf-8-sig" if first else "utf-8")
        except UnicodeDecodeError as error:
            raise RejectedFile(
                self.source, self._line,
                f"not UTF-8: byte 0x{raw_line[error.start]:02x} at column {error.start + 1} "
                "(re-export the file as UTF-8)",
            ) from None

    def rows(self) -> Iterator[StagedRow]:
        """Staging rows for every record; alarms and the sentinel are counted, not yielded."""
        reader = csv.reader(self._text_lines(), strict=True)
        records = self._records(reader)
        header = next(records, None)
        if header is None or header[1] == []:
            return  # a zero-byte file: a valid, empty change set
        layout = _Layout(self._columns(header[1]))
        for line, fields in records:
            if fields:
                yield from self._row(line, fields, layout)

    def _records(self, reader: Iterable[list[str]]) -> Iterator[tuple[int, list[str]]]:
        start = 1
        iterator = iter(reader)
        while True:
            try:
                fields = next(iterator)
            except StopIteration:
                return
            except csv.Error as error:
                if "unexpected end of data" in str(error):
                    reason = "unterminated quoted field (the rest of the file is unreadable)"
                elif "field larger" in str(error):
                    reason = (f"a field longer than {MAX_FIELD_CHARS // (1024 * 1024)} MiB, most likely a quote "
                              "that is never closed")
                else:
                    reason = f"broken quoting in the record starting on this line ({error})"
                raise RejectedFile(self.source, start, reason) from None
            yield start, fields
            start = self._line + 1

    def _columns(self, header: list[str]) -> list[str]:
        columns = [name.strip() for name in header]
        if "ticket_id" not in columns:
            shown = ", ".join(columns[:6]) + (", …" if len(columns) > 6 else "")
            raise RejectedFile(self.source, 1, f"no ticket_id column in the header ({shown}): not a change file")
        duplicated = sorted({name for name in columns if columns.count(name) > 1})
        if duplicated:
            raise RejectedFile(self.source, 1, f"column named twice in the header: {', '.join(duplicated)}")
        return columns

    def _row(self, line: int, fields: list[str], layout: _Layout) -> Iterator[StagedRow]:
        counts = self.counts
        counts.rows_read += 1
        ticket_id = fields[layout.ticket].strip() if layout.ticket < len(fields) else ""
        if ticket_id.startswith(SENTINEL_PREFIX):
            counts.sentinels += 1
            return
        reason = None
        if len(fields) != layout.width:
            reason = f"{len(fields)} fields where the header has {layout.width}"
        elif not ticket_id:
            reason = "empty ticket_id"
        elif not self.ticket_id_pattern.fullmatch(ticket_id):
            reason = f"ticket_id {ticket_id[:40]!r} is not {self.ticket_id_description}"
        elif self._saw_nul and any("\x00" in value for value in fields):
            reason = "NUL character in a field"
        if reason:
            counts.rows_rejected += 1
            yield (line, ticket_id or None, None, reason, _as_csv_line(fields))
            return
        if layout.alarm is not None and fields[layout.alarm].strip().lower() in ALARM_SPELLINGS:
            counts.alarms_dropped += 1
            return
        raw = dict(zip(layout.kept_names, [None if not value or value.isspace() else value
                                           for value in layout.kept_values(fields)], strict=True))
        raw["ticket_id"] = ticket_id
        for name, clean in CLEANERS.items():
            if raw.get(name) is not None:
                raw[name] = clean(raw[name])
        yield (line, ticket_id, orjson.dumps(raw).decode(), None, None)


# Field-specific cleaning of the contract, applied after blank fields became null.
CLEANERS = {"region": lambda value: value.strip().lower(), "raw_status": lambda value: value.strip().upper()}


class _Layout:
    """Where things are in this file's records, worked out once from its header."""

    def __init__(self, columns: list[str]) -> None:
        self.width = len(columns)
        self.ticket = columns.index("ticket_id")
        self.alarm = columns.index("is_alarm") if "is_alarm" in columns else None
        kept = [(index, name) for index, name in enumerate(columns) if name not in BOOKKEEPING_COLUMNS]
        self.kept_names = [name for _, name in kept]
        getter = operator.itemgetter(*(index for index, _ in kept))
        self.kept_values = (lambda fields: [getter(fields)]) if len(kept) == 1 else getter
