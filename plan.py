"""What a run will do, decided before it touches anything: the change files to act on, in order, with an action each.

From the bucket: list changes/, ignore (and say so) keys that are not change
files, and ask the ledger about the rest: a version never seen is applied, one
applied before is only archived, one rejected before is only moved to
rejected/. From local files: every file is applied, in name order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import psycopg

import ledger
from bucket import Bucket
from changefile import ByteStream
from database import lost_connection_ends_run
from dataset import Dataset
from errors import FleetError
from faults import fault
from report import Log


class Action(enum.Enum):
    APPLY = "apply"
    """A version the ledger has not applied: apply it, then archive it."""
    ARCHIVE = "archive"
    """Applied by an earlier run that died before moving it: archive it, never apply it again."""
    FINISH_REJECTION = "finish rejection"
    """Rejected by an earlier run that died before moving it: move it to rejected/."""


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


@dataclass(frozen=True)
class Step:
    source: Source
    action: Action


@dataclass(frozen=True)
class Plan:
    steps: list[Step]
    keys_in_changes: frozenset[str]
    """Every key listed under changes/, change file or not: what the ledger can reconcile against."""


def bucket_plan(conn: psycopg.Connection, dataset: Dataset, bucket: Bucket, log: Log, *, reseed: bool) -> Plan:
    """The files of changes/ to act on, oldest first; --reseed applies every one again."""
    listed = bucket.list(dataset.changes_prefix)
    fault("after_list")
    stamped = []
    for obj in listed:
        match = dataset.key_pattern.fullmatch(obj.key)
        if match:
            stamped.append((match["stamp"], obj))
        else:
            log.warn(f"ignoring {obj.key!r}: not a change file name (expected "
                     f"{dataset.changes_prefix}YYYY-MM-DDTHH-MM-SS.csv); left where it is")
    stamped.sort(key=lambda pair: (pair[0], pair[1].key))

    with lost_connection_ends_run(conn, "reading the ledger"):
        versions = ledger.versions_of(conn, dataset, (obj.key for _, obj in stamped))
        watermark = ledger.watermark(conn, dataset)

    steps = []
    for _stamp, obj in stamped:
        seen = versions.get(obj.key, {})
        source = Source(obj.key, obj.etag, obj.size, _opener(bucket, obj.key, obj.etag),
                        rewritten=bool(set(seen) - {obj.etag}))
        if obj.etag in seen and not reseed:
            steps.append(Step(source, Action.ARCHIVE if seen[obj.etag] == "applied" else Action.FINISH_REJECTION))
            continue
        if seen and obj.etag not in seen:
            log.warn(f"{obj.key} was rewritten by the export (new ETag): applying it as a new file")
        elif not seen and watermark and obj.key <= watermark:
            log.warn(f"{obj.key} arrived late (at or below the watermark {watermark}): applying it")
        steps.append(Step(source, Action.APPLY))
    return Plan(steps, frozenset(obj.key for obj in listed))


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
