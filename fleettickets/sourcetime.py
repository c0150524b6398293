"""Time in a change file's name, turned into an instant in one place (the fields' timestamps: tickets.eat_ts()).

A key's stamp is data from outside, like any field. A key whose stamp is not a real instant
(`2026-13-01T06-00-00.csv`) is not a change file; a stamp further ahead of
now than `FUTURE_TOLERANCE` is held back, never applied and never the
watermark, until its time comes. Nothing that reads a stored key can fail on
it: `export_time()` answers None for anything it cannot read.
"""

from __future__ import annotations

import datetime as dt
import enum
import re

EAT = dt.timezone(dt.timedelta(hours=3), "EAT")
"""The source's wall clock: stamps and timestamps carry no offset and mean East Africa Time (Kenya keeps no
daylight saving, so a fixed offset needs no tz database in the image)."""

# [0-9], not \d: \d also matches other scripts' digits, and such a key would sort above every real one.
STAMP_PATTERN = r"(?P<stamp>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2})"
STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"
STAMP_IN_NAME = re.compile(STAMP_PATTERN + r"(?:\.[0-9a-f]+)?\.csv")
"""A file name as the export writes it, or as the archive keeps a rewritten version (stem.<etag>.csv)."""

FUTURE_TOLERANCE = dt.timedelta(hours=1)
"""How far ahead of our clock an export stamp may be: the export's clock and ours may differ by minutes, not
hours. A file stamped later is held in changes/ until then, and reported."""


def stamp_time(stamp: str) -> dt.datetime | None:
    """The instant of an export stamp ('2026-11-20T06-00-00'), or None when it names no real time."""
    try:
        return dt.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=EAT)
    except ValueError:
        return None


def export_time(name: str) -> dt.datetime | None:
    """The export instant in a change file's name or key, or None when it has no stamp naming a real time."""
    match = STAMP_IN_NAME.fullmatch(name.rpartition("/")[2])
    return stamp_time(match["stamp"]) if match else None


def too_far_ahead(exported: dt.datetime, now: dt.datetime) -> bool:
    """Whether an export stamp is later than our clock allows for (see FUTURE_TOLERANCE)."""
    return exported > now + FUTURE_TOLERANCE


class KeyKind(enum.Enum):
    """What a key under changes/ is, in words for messages."""

    CHANGE_FILE = "a change file"
    MISNAMED = "not a change file name"
    NO_SUCH_TIME = "its stamp names no real time"
    AHEAD = "stamped too far ahead"


def classify(key_pattern: re.Pattern[str], key: str, now: dt.datetime) -> KeyKind:
    """A key under changes/: a change file to act on, one to hold for now, or no change file at all."""
    match = key_pattern.fullmatch(key)
    if not match:
        return KeyKind.MISNAMED
    exported = stamp_time(match["stamp"])
    if exported is None:
        return KeyKind.NO_SUCH_TIME
    return KeyKind.AHEAD if too_far_ahead(exported, now) else KeyKind.CHANGE_FILE
