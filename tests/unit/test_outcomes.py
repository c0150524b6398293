"""What each failure means for a file, as one table (fleettickets/outcome.py), and the engine acting on it in one
place (IngestRun.settle): the fate of every kind of error, and no other `except` in the engine deciding one."""

from __future__ import annotations

import ast
from pathlib import Path

import psycopg
import pytest

from fleettickets import outcome
from fleettickets.bucket import (
    ObjectChanged,
    ObjectGone,
    StorageError,
    StorageUnavailable,
    TransferError,
    TransferTooSlow,
)
from fleettickets.changefile import RejectedFile, Source
from fleettickets.outcome import Fate

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Source("automations/inc/changes/2026-11-20T06-00-00.csv", "0123456789abcdef0123456789abcdef", 10,
                open=lambda: None)  # never read: only its key and ETag are said


def database_error(sqlstate: str) -> psycopg.Error:
    return psycopg.errors.lookup(sqlstate)("x")


STAGING = [
    (RejectedFile(SOURCE.key, 3, "broken quoting"), Fate.REJECTED, "line 3: broken quoting"),
    (StorageUnavailable("S3 reading x failed"), Fate.RUN_ENDS, "every file committed before stays applied"),
    (ObjectChanged("no longer holds the version that was listed"), Fate.REWRITTEN, "was rewritten by the export"),
    (ObjectGone("gone"), Fate.GONE, "was deleted from changes/ after it was listed: nothing of it applied"),
    (TransferTooSlow("took over 300 s"), Fate.LEFT, "took over 300 s"),
    (TransferError("broke off"), Fate.READ_AGAIN, "broke off"),
    (StorageError("access denied"), Fate.LEFT, "access denied"),
    (database_error("22P02"), Fate.REJECTED, "the database refuses the file"),  # data exception
    (database_error("23505"), Fate.REJECTED, "the database refuses the file"),  # integrity
    (database_error("54000"), Fate.REJECTED, "the database refuses the file"),  # program limit
    (database_error("55P03"), Fate.RUN_ENDS, "did not answer in time"),  # lock_timeout
    (database_error("57014"), Fate.RUN_ENDS, "did not answer in time"),  # statement_timeout
    (database_error("40P01"), Fate.LEFT, "the database refused"),  # a deadlock: the moment's
]


@pytest.mark.parametrize(("error", "fate", "said"), STAGING, ids=lambda v: type(v).__name__ if isinstance(
    v, BaseException) else None)
def test_every_kind_of_staging_failure_has_its_fate(error, fate, said):
    found = outcome.of_staging(error, SOURCE)
    assert (found.fate, said in found.line) == (fate, True), found
    assert (found.rejected is not None) == (fate is Fate.REJECTED)


@pytest.mark.parametrize(("error", "fate", "said"), [
    (StorageUnavailable("S3 copying x failed"), Fate.RUN_ENDS, "the bucket cannot be reached"),
    (ObjectChanged("x"), Fate.REWRITTEN, "was rewritten by the export"),
    (ObjectGone("x"), Fate.GONE, "was deleted from changes/ during the run: it is applied"),
    (StorageError("access denied"), Fate.MOVED_NEXT_RUN, "stays in changes/ and is archived (not applied again)"),
])
def test_every_kind_of_move_failure_has_its_fate(error, fate, said):
    found = outcome.of_moving(error, SOURCE, "automations/inc/processed/x.csv", applied=True)
    assert (found.fate, said in found.line) == (fate, True), found


def test_every_fate_is_settled_in_one_place_and_no_other_except_decides_one():
    tree = ast.parse((ROOT / "fleettickets" / "pipeline.py").read_text(encoding="utf-8"))
    settle = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "settle")
    settled = {node.attr for node in ast.walk(settle) if isinstance(node, ast.Attribute)
               and isinstance(node.value, ast.Name) and node.value.id == "Fate"}
    assert settled | {"READ_AGAIN"} == {fate.name for fate in Fate}  # READ_AGAIN is the staging loop's, then LEFT
    deciding = []
    for handler in (node for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler)):
        calls = {node.func.attr for node in ast.walk(handler) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute)}
        names = {node.id for node in ast.walk(handler) if isinstance(node, ast.Name)}
        if not (calls & {"settle", "of_staging", "of_moving", "of_database"} or "BaseException" in names
                or all(isinstance(node, ast.Raise) for node in handler.body)):
            deciding.append(handler.lineno)
    assert not deciding, f"pipeline.py decides a fate outside outcome.py at lines {deciding}"
