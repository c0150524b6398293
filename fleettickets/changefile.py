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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import TracebackType
from typing import Protocol, Self

import orjson

from fleettickets.errors import FleetError

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
# Several large fields in one record add up: the record as a whole (line
# breaks included) is bounded too, so memory per record is.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# The export writes 32 columns of short names; 1,000 columns of 64 bytes is
# far beyond any real header and keeps a garbage header from costing time.
MAX_COLUMNS = 1000
MAX_HEADER_BYTES = 64 * 1024
READ_CHUNK_BYTES = 256 * 1024

csv.field_size_limit(MAX_FIELD_CHARS)


class ByteStream(Protocol):
    """What a change file is read from: a local file opened 'rb', or an object's body from the bucket."""

    def read(self, size: int = -1, /) -> bytes: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None, /) -> None: ...


@dataclass(frozen=True)
class Source:
    """A change file to act on, from the bucket or the local disk."""

    key: str
    """Ledger key: the bucket key, or 'file:' + absolute path."""
    etag: str
    """The version listed; every request about the file names it. Empty for a local file."""
    size: int | None
    open: Callable[[], ByteStream]
    rewritten: bool = False
    """The export wrote this key before with other content, whose copy is already archived."""
    archived_copy: str | None = None
    """Set for a version caught up from processed/ (the ledger did not know it): read from this copy, applied,
    never moved."""

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


class RejectedFile(FleetError):
    """The file cannot be applied as a whole: not UTF-8, no ticket_id column, broken quoting, over a limit."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}: {self.where}")

    @property
    def where(self) -> str:
        """The reason, led by the line it concerns when there is one: 'line 3: …'."""
        return self.reason if self.line is None else f"line {self.line}: {self.reason}"


@dataclass
class FileCounts:
    """What reading one file found; every number is a count of CSV records."""

    rows_read: int = 0
    """Records after the header that are not blank: each is staged, dropped or rejected."""
    staged: int = 0
    alarms_dropped: int = 0
    sentinels: int = 0
    blank_lines: int = 0
    """Blank or whitespace-only lines, before the header or between records: skipped."""
    rows_rejected: int = 0

    def add(self, other: FileCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


StagedRow = tuple[int, str | None, str | None, str | None, str | None, str | None]
"""(line, ticket_id, raw json, raw's source_updated_at, reject reason, raw text): the staging table's columns."""


def _as_csv_line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return storable(buffer.getvalue())


def storable(text: str) -> str:
    """`text` as PostgreSQL can store it: NUL, which text cannot hold, is written as the four characters \\x00."""
    return text.replace("\x00", "\\x00")


def _is_blank(fields: list[str]) -> bool:
    """An empty or whitespace-only line: csv yields [] or one field of spaces for it."""
    return not fields or (len(fields) == 1 and fields[0].strip() == "")


@dataclass
class ChangeFile:
    """Streams the records of one change file as staging rows, counting as it goes.

    Every record is accounted for: the header, a blank line, or a row that is
    staged, dropped by a cleaning rule (alarm, sentinel) or rejected. When the
    stream is drained, `rows()` checks that the file was read to its end and
    that the counts add up; a file for which they do not is rejected, never
    applied with rows missing.
    """

    stream: ByteStream
    source: str
    """How the file is named in messages: its bucket key or local path."""
    ticket_id_pattern: re.Pattern[str]
    ticket_id_description: str
    """Human form of the pattern for messages, e.g. 'INC + 12 digits'."""
    counts: FileCounts = field(default_factory=FileCounts)
    _line: int = 0
    _saw_nul: bool = False
    _at_end: bool = False
    _records: int = 0
    _record_line: int = 1
    """The line the record being read starts on."""
    _record_bytes: int = 0
    """Bytes of the record being read so far."""
    _record_limit: int = MAX_HEADER_BYTES
    """The header has a tighter bound than the records after it."""

    def _text_lines(self) -> Iterator[str]:
        """Physical lines, each bounded and counted as it is read, so an error names its line."""
        pending = b""
        first = True
        while True:
            chunk = self.stream.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            pending += chunk
            end = pending.rfind(b"\n") + 1
            lines, pending = pending[:end], pending[end:]
            if first and lines:  # the first line may open with a byte-order mark
                opening = lines.find(b"\n") + 1
                yield self._decode(lines[:opening], first)
                lines, first = lines[opening:], False
            if lines.isascii():
                # The common case, decoded at once: a character is a byte, and no line can fail to decode.
                if b"\x00" in lines:
                    self._saw_nul = True  # rare: only then are fields searched for it
                for line in lines.decode("ascii").split("\n")[:-1]:
                    size = len(line) + 1
                    if self._record_bytes + size > self._record_limit:
                        self._bound_record(size)
                    self._record_bytes += size
                    self._line += 1
                    yield line + "\n"
            else:
                for raw_line in lines.split(b"\n")[:-1]:
                    yield self._decode(raw_line + b"\n", first=False)
            self._bound_record(len(pending))
        if pending:
            yield self._decode(pending, first)
        self._at_end = True

    def _bound_record(self, more: int) -> None:
        if self._record_bytes + more > self._record_limit:
            what = "header" if self._record_limit == MAX_HEADER_BYTES else "record"
            raise RejectedFile(self.source, self._record_line,
                               f"a {what} longer than {_size(self._record_limit)} (the limit for one {what}, all its "
                               "fields and line breaks together)")

    def _decode(self, raw_line: bytes, first: bool) -> str:
        self._bound_record(len(raw_line))
        self._record_bytes += len(raw_line)
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
        """Staging rows for every record; alarms, sentinels and blank lines are counted, not yielded."""
        records = self._read_records(csv.reader(self._text_lines(), strict=True))
        layout = None
        for line, fields in records:
            if _is_blank(fields):
                self.counts.blank_lines += 1
            elif layout is None:
                layout = _Layout(self._columns(fields))
                self._record_limit = MAX_RECORD_BYTES
            elif (row := self._row(line, fields, layout)) is not None:
                yield row
        # No header at all (zero bytes, or only blank lines): a valid, empty change set.
        self._check_accounting(header_records=0 if layout is None else 1)

    def _read_records(self, reader: Iterable[list[str]]) -> Iterator[tuple[int, list[str]]]:
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
                    reason = (f"a field longer than {_size(MAX_FIELD_CHARS)}, most likely a quote "
                              "that is never closed")
                else:
                    reason = f"broken quoting in the record starting on this line ({error})"
                raise RejectedFile(self.source, self._record_line, reason) from None
            self._records += 1
            yield self._record_line, fields
            self._record_line = self._line + 1
            self._record_bytes = 0

    def _check_accounting(self, header_records: int) -> None:
        """The invariant: the whole file was read, and every record is in exactly one count."""
        counts = self.counts
        if not self._at_end:
            raise RejectedFile(self.source, self._record_line, "the reader stopped before the end of the file")
        outcomes = counts.staged + counts.alarms_dropped + counts.sentinels + counts.rows_rejected
        if counts.rows_read != outcomes or self._records != header_records + counts.blank_lines + counts.rows_read:
            raise RejectedFile(
                self.source, None,
                f"records do not add up: {self._records} read = {header_records} header + {counts.blank_lines} "
                f"blank + {counts.rows_read} rows, and {counts.rows_read} rows = {counts.staged} staged + "
                f"{counts.alarms_dropped} alarms + {counts.sentinels} sentinels + {counts.rows_rejected} rejected")

    def _columns(self, header: list[str]) -> list[str]:
        line = self._record_line
        if len(header) > MAX_COLUMNS:
            raise RejectedFile(self.source, line,
                               f"{len(header)} columns in the header, over the limit of {MAX_COLUMNS}")
        columns = [name.strip() for name in header]
        # A byte-order mark opens the file, but blank lines may have come before the header.
        columns[0] = columns[0].removeprefix("\ufeff").strip()
        if any("\x00" in name for name in columns):
            raise RejectedFile(self.source, line, "NUL character in the header")
        if "ticket_id" not in columns:
            shown = ", ".join(columns[:6]) + (", …" if len(columns) > 6 else "")
            raise RejectedFile(self.source, line, f"no ticket_id column in the header ({shown}): not a change file")
        duplicated = sorted(name for name, seen in Counter(columns).items() if seen > 1)
        if duplicated:
            raise RejectedFile(self.source, line, f"column named twice in the header: {', '.join(duplicated)}")
        return columns

    def _row(self, line: int, fields: list[str], layout: _Layout) -> StagedRow | None:
        """The staging row of one record after the header, or None when a cleaning rule drops it."""
        counts = self.counts
        counts.rows_read += 1
        ticket_id = fields[layout.ticket].strip() if layout.ticket < len(fields) else ""
        if ticket_id.startswith(SENTINEL_PREFIX):
            counts.sentinels += 1
            return None
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
            return (line, storable(ticket_id[:200]) or None, None, None, reason, _as_csv_line(fields))
        if layout.alarm is not None and fields[layout.alarm].strip().lower() in ALARM_SPELLINGS:
            counts.alarms_dropped += 1
            return None
        raw = {name: None if not value or value.isspace() else value
               for name, value in zip(layout.kept_names, layout.kept_values(fields), strict=True)}
        for name, clean in layout.cleaners:
            if (value := raw[name]) is not None:
                raw[name] = clean(value)
        raw["ticket_id"] = ticket_id
        counts.staged += 1
        return (line, ticket_id, orjson.dumps(raw).decode(), raw.get("source_updated_at"), None, None)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


# Typed fields (timestamps, booleans, numbers, coordinates) are trimmed before anything parses them: the
# contract reads a space-only field as null, so ' 2026-11-20 06:00:00' is that time, not an unparseable value.
TYPED_FIELDS = ("created_at_service", "scheduled_at", "closed_at", "first_seen_at", "last_seen_at",
                "source_created_at", "source_updated_at", "is_actionable", "is_auto_created", "is_auto_closed",
                "mttr", "latitude", "longitude")

# Field-specific cleaning of the contract, applied after blank fields became null.
CLEANERS = {"region": lambda value: value.strip().lower(), "raw_status": lambda value: value.strip().upper(),
            **dict.fromkeys(TYPED_FIELDS, str.strip)}


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
        self.cleaners = [(name, CLEANERS[name]) for name in self.kept_names if name in CLEANERS]
