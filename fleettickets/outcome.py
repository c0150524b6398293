"""What a failure means, as data: for the file, the run, and the one line said.

A file that cannot be staged or moved meets one of a few fates; which one is decided here, from the error, and
nowhere else. pipeline.IngestRun.settle() carries each fate out in one place. docs/implementation.md's bad-input
catalogue and tests/engine/test_bad_inputs.py, test_outages.py and test_crash_points.py exercise every row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import psycopg

from fleettickets.bucket import (
    ObjectChanged,
    ObjectGone,
    StorageUnavailable,
    TransferError,
    TransferTooSlow,
)
from fleettickets.changefile import RejectedFile, Source
from fleettickets.database import WHAT_STAYS, describe_error, out_of_time, refused_by_data
from fleettickets.errors import FleetError

# Every further request would wait out the same timeouts (minutes each) while the dataset's lock is held.
BUCKET_GONE = ("the bucket cannot be reached, so the run stops moving files: every file it applied stays in "
               "changes/ and is archived (not applied again) next run, every file it rejected is moved to rejected/ "
               "next run")


class Fate(enum.Enum):
    REJECTED = "moved to rejected/ with the reason beside it: the same bytes would fail every run"
    LEFT = "left in changes/ and counted failed: the next run tries it again"
    READ_AGAIN = "read again at once, while attempts and the object's time remain; then left"
    REWRITTEN = "left in changes/ with a warning: the export rewrote the key, the next run applies the new version"
    GONE = "nothing to do, with a warning: the key was deleted after it was listed"
    MOVED_NEXT_RUN = "applied or rejected already, moved out of changes/ by the next run: an error line"
    RUN_ENDS = "the run ends in one line: every next file would meet the same; what committed stays"


@dataclass(frozen=True)
class Outcome:
    fate: Fate
    line: str
    """What is said: the error line, or the warning."""
    rejected: RejectedFile | None = None
    """For REJECTED: what goes in the ledger and the .error.txt."""
    cause: str | None = None
    """The error alone, for the run's report, where the line adds what happens next."""


def rewritten(source: Source) -> Outcome:
    return Outcome(Fate.REWRITTEN, f"{source.key} was rewritten by the export during this run (it no longer holds "
                                   f"ETag {source.etag}): left in changes/, the next run applies the new version")


def of_staging(error: FleetError | psycopg.Error, source: Source) -> Outcome:
    """The fate of a file that could not be staged (read, decoded or written to the staging table)."""
    key = source.key
    if isinstance(error, RejectedFile):
        return Outcome(Fate.REJECTED, str(error), error)
    if isinstance(error, StorageUnavailable):
        return Outcome(Fate.RUN_ENDS, f"{error}; {WHAT_STAYS}")
    if isinstance(error, ObjectChanged):
        return rewritten(source)
    if isinstance(error, ObjectGone):
        return Outcome(Fate.GONE, f"{key} was deleted from changes/ after it was listed: nothing of it applied")
    if isinstance(error, TransferTooSlow):
        return Outcome(Fate.LEFT, str(error))
    if isinstance(error, TransferError):
        return Outcome(Fate.READ_AGAIN, str(error))
    if isinstance(error, psycopg.Error):
        return of_database(error, key, refused_whole=RejectedFile(
            key, None, f"the database refuses the file: {describe_error(error)}"))
    return Outcome(Fate.LEFT, str(error))  # StorageError and the rest: the moment's, tried again next run


def of_database(error: psycopg.Error, what: str, *, refused_whole: RejectedFile | None) -> Outcome:
    """The fate of what the database refused (its savepoint or transaction rolled back): out of time, every next
    file would wait the same; refused for its content (`refused_whole`, when it is one file's), the same bytes
    would fail every run; otherwise the moment's (a deadlock), tried again next run."""
    if out_of_time(error):
        return Outcome(Fate.RUN_ENDS, f"the database did not answer in time while applying {what} "
                                      f"({describe_error(error)}; FLEETTICKETS_LOCK_TIMEOUT / "
                                      f"FLEETTICKETS_STATEMENT_TIMEOUT); {WHAT_STAYS}")
    if refused_by_data(error) and refused_whole is not None:
        return Outcome(Fate.REJECTED, str(refused_whole), refused_whole)
    return Outcome(Fate.LEFT, f"the database refused {what}: {describe_error(error)}")


def of_moving(error: FleetError, source: Source, destination: str, *, applied: bool) -> Outcome:
    """The fate of a file that could not be moved to `destination` (processed/ when applied, else rejected/)."""
    key = source.key
    if isinstance(error, ObjectChanged):
        return rewritten(source)
    if isinstance(error, ObjectGone):
        state = "it is applied" if applied else "the ledger records it as rejected (see ingest_files.error)"
        return Outcome(Fate.GONE, f"{key} was deleted from changes/ during the run: {state}, and {destination} "
                                  "exists only if the copy was made before")
    if isinstance(error, StorageUnavailable):
        return Outcome(Fate.RUN_ENDS, f"{error}; {BUCKET_GONE}")
    then = "archived (not applied again)" if applied else "moved to rejected/"
    return Outcome(Fate.MOVED_NEXT_RUN, f"{error}; {key} stays in changes/ and is {then} next run", cause=str(error))
