"""What a run will do, decided before it touches anything: the change files to act on, in order, with an action each.

From the bucket: list changes/, leave alone (and say so) keys that are not
change files — a stamp naming no real time included — and hold those stamped
too far ahead of now (sourcetime.FUTURE_TOLERANCE); ask the ledger about the
rest: a version never seen is applied, one applied before is only archived,
one rejected before is only moved to rejected/ — unless it was moved there
and a person put it back, which is tried again. From local files: every file
is applied, in name order.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from fleettickets import ledger, sourcetime
from fleettickets.bucket import Bucket
from fleettickets.changefile import ByteStream, Source
from fleettickets.database import lost_connection_ends_run
from fleettickets.dataset import Dataset
from fleettickets.errors import FleetError
from fleettickets.faults import fault
from fleettickets.log import Log


class Action(enum.Enum):
    APPLY = "apply"
    """A version the ledger has not applied: apply it, then archive it."""
    ARCHIVE = "archive"
    """Applied by an earlier run that died before moving it: archive it, never apply it again."""
    FINISH_REJECTION = "finish rejection"
    """Rejected by an earlier run that died before moving it: move it to rejected/."""


@dataclass(frozen=True)
class Step:
    source: Source
    action: Action


@dataclass(frozen=True)
class Plan:
    steps: list[Step]
    keys_in_changes: frozenset[str]
    """Every key listed under changes/, change file or not: what the ledger can reconcile against."""


NOW = "SELECT tickets.clock()"

LATE_WINDOW = dt.timedelta(days=1)
"""How late (below the watermark) an archived file may be stamped and still be caught up after a restore: the
export's late files come minutes, not days, after their stamp."""


def bucket_plan(conn: psycopg.Connection, dataset: Dataset, bucket: Bucket, log: Log, *, reseed: bool) -> Plan:
    """The files of changes/ to act on, oldest first; --reseed applies every one again."""
    listed = bucket.list(dataset.changes_prefix)
    fault("after_list")
    with lost_connection_ends_run(conn, "reading the clock"):
        now = _one(conn.execute(NOW).fetchone())
    stamped = []
    for obj in listed:
        kind = sourcetime.classify(dataset.key_pattern, obj.key, now)
        if kind is sourcetime.KeyKind.CHANGE_FILE:
            stamped.append(obj)
        elif kind is sourcetime.KeyKind.AHEAD:
            log.warn(f"holding {obj.key!r}: stamped more than {_hours(sourcetime.FUTURE_TOLERANCE)} ahead of now "
                     f"({now.astimezone(sourcetime.EAT):%Y-%m-%d %H:%M} EAT); it is applied once its time comes, "
                     "or deleted if the stamp is wrong")
        else:
            log.warn(f"ignoring {obj.key!r}: {kind.value} (expected {dataset.changes_prefix}YYYY-MM-DDTHH-MM-SS.csv, "
                     "a real EAT time); left where it is")
    stamped.sort(key=lambda obj: obj.key)

    with lost_connection_ends_run(conn, "reading the ledger"):
        watermark = ledger.watermark(conn, dataset)
    caught_up = archived_unknown(conn, dataset, bucket, watermark, now, log)
    if caught_up:
        log.warn(f"catching up from {dataset.processed_prefix}: {len(caught_up)} archived files are not in the "
                 "ledger (a database restored from a backup?); applying them in order")
    with lost_connection_ends_run(conn, "reading the ledger"):
        versions = ledger.versions_of(conn, dataset, (obj.key for obj in stamped))

    steps = []
    for obj in stamped:
        seen = versions.get(obj.key, {})
        source = Source(obj.key, obj.etag, obj.size, _opener(bucket, obj.key, obj.etag),
                        rewritten=bool(set(seen) - {obj.etag}))
        known = seen.get(obj.etag)
        if known and not reseed:
            if known.status == "applied":
                steps.append(Step(source, Action.ARCHIVE))
                continue
            if not known.moved:
                steps.append(Step(source, Action.FINISH_REJECTION))
                continue
            log.warn(f"{obj.key} was rejected before and has been put back in changes/: trying it again")
        elif seen and not known:
            log.warn(f"{obj.key} was rewritten by the export (new ETag): applying it as a new file")
        elif not seen and watermark and obj.key <= watermark:
            log.warn(f"{obj.key} arrived late (at or below the watermark {watermark}): applying it")
        steps.append(Step(source, Action.APPLY))
    steps += [Step(source, Action.APPLY) for source in caught_up]
    # Key order is export order; an archived version of a key was there before the one now in changes/.
    steps.sort(key=lambda step: (step.source.key, step.source.archived_copy is None))
    return Plan(steps, frozenset(obj.key for obj in listed))


def archived_unknown(conn: psycopg.Connection, dataset: Dataset, bucket: Bucket, watermark: str | None,
                     now: dt.datetime, log: Log | None = None) -> list[Source]:
    """Versions in processed/ the ledger does not know, from a day before the watermark's stamp on (all of them
    when nothing was applied yet): what a database restored from an earlier backup, or a new one, has not applied.
    In a database adopted from the original system, none at or below the watermark it carried over.

    The archive is the source of truth: a copy in processed/ is a version some run applied. Each is named by the
    key it came from (`<stamp>.csv`, or `<stamp>.<etag>.csv` for an earlier version of a rewritten key).
    """
    newest = sourcetime.export_time(watermark) if watermark else None
    # From a day before the watermark's stamp: a late file (stamped below the watermark) applied after the
    # backup was taken is archived under its own, earlier stamp.
    start = (newest - LATE_WINDOW).strftime(sourcetime.STAMP_FORMAT) if newest else None
    archived = bucket.list(dataset.processed_prefix, start_after=dataset.processed_prefix + start if start else None)
    named = []
    for obj in archived:
        match = sourcetime.STAMP_IN_NAME.fullmatch(obj.key.rpartition("/")[2])
        if not match:
            continue
        key = f"{dataset.changes_prefix}{match['stamp']}.csv"
        # The same time checks as a key in changes/: a copy stamped ahead would otherwise become the watermark.
        kind = sourcetime.classify(dataset.key_pattern, key, now)
        if kind is sourcetime.KeyKind.CHANGE_FILE:
            named.append((key, obj))
        elif log is not None:
            log.warn(f"not catching up {obj.key!r}: {_why_not(kind)}; left where it is")
    with lost_connection_ends_run(conn, "reading the ledger"):
        adopted = ledger.adopted_through(conn, dataset)
        if adopted:
            # The original importer's files: applied and archived by it before this database was adopted.
            named = [(key, obj) for key, obj in named if key > adopted]
        known = ledger.versions_of(conn, dataset, {key for key, _ in named})
    # A copy in processed/ is a version some run applied: one the ledger does not hold as applied (unknown, or
    # rejected in a backup taken before an operator put it back) is missing from the tickets.
    # Known by the source's ETag, or by its copy's where they differ (a multipart or SSE-KMS upload).
    applied = {(key, etag) for key, versions in known.items() for source_etag, version in versions.items()
               if version.status == "applied" for etag in (source_etag, version.copy_etag) if etag}
    missing = [(key, obj) for key, obj in named if (key, obj.etag) not in applied]
    # Versions of one key in the order they were archived, which is the order they were applied in.
    unknown = sorted(missing, key=lambda pair: (pair[0], pair[1].modified))
    return [Source(key, obj.etag, obj.size, _opener(bucket, obj.key, obj.etag), archived_copy=obj.key)
            for key, obj in unknown]


def _why_not(kind: sourcetime.KeyKind) -> str:
    if kind is sourcetime.KeyKind.AHEAD:
        return (f"stamped more than {_hours(sourcetime.FUTURE_TOLERANCE)} ahead of now; it is caught up once its "
                "time comes")
    return kind.value


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} h"


def _one(row: tuple | None) -> dt.datetime:
    assert row is not None
    return row[0]


def local_plan(paths: Sequence[Path]) -> Plan:
    """Local files in key order (their names are export timestamps), all to apply."""
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FleetError(f"no such file: {', '.join(missing)}")
    ordered = sorted((p.resolve() for p in paths), key=lambda p: (p.name, str(p)))
    return Plan([Step(Source(f"file:{p}", "", p.stat().st_size, _file_opener(p)), Action.APPLY)
                 for p in ordered], frozenset())


def _opener(bucket: Bucket, key: str, etag: str) -> Callable[[], ByteStream]:
    return lambda: bucket.open(key, etag)


def _file_opener(path: Path) -> Callable[[], ByteStream]:
    return lambda: path.open("rb")
