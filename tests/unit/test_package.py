"""The package's shape: edges depend on the core and never the reverse, no import cycle, and the runner and the
history capture start without loading the engine."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fleettickets"
EDGES = {"edge", "cli", "schema", "s3probe"}
"""What turns a process's arguments and exceptions into work and exit codes; the core never imports them."""
ENGINE = {"pipeline", "plan", "load", "bucket", "changefile", "status", "cli"}


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports, however it spells the import."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "fleettickets":
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fleettickets."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("fleettickets.")}
    return found


GRAPH = {path.stem: imports_of(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def test_the_package_has_no_import_cycle():
    try:
        list(TopologicalSorter(GRAPH).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_core_never_imports_an_edge():
    offenders = {module: GRAPH[module] & EDGES for module in GRAPH.keys() - EDGES - {"history"}
                 if GRAPH[module] & EDGES}
    assert not offenders


@pytest.mark.parametrize("module", ["fleettickets.schema", "fleettickets.history", "fleettickets.edge"])
def test_the_runner_and_the_history_capture_start_without_the_engine(module):
    probe = (f"import sys, {module}; "
             "print(' '.join(sorted(m.split('.')[1] for m in sys.modules if m.startswith('fleettickets.'))))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.split())
    assert module.split(".")[1] in loaded
    assert not loaded & ENGINE, f"{module} loads {sorted(loaded & ENGINE)}"


def test_no_top_level_module_but_the_entrypoints():
    """Installed, the project adds one package and the two entrypoints Coolify runs, nothing named `settings`."""
    modules = {path.stem for path in ROOT.glob("*.py")}
    assert modules == {"run_migrations", "devstack"}
    assert "from fleettickets import schema" in (ROOT / "run_migrations.py").read_text()


def test_every_planted_bug_of_tests_mutants_still_applies_to_the_tree():
    """A mutant whose original text has moved would be skipped by tests/mutants.py and count for nothing."""
    import mutants

    stale = [mutant.name for mutant in mutants.MUTANTS
             if (ROOT / mutant.path).read_text(encoding="utf-8").count(mutant.original) != 1]
    assert not stale, f"tests/mutants.py: originals no longer found once in the tree: {stale}"


def test_the_ledger_module_owns_every_statement_on_the_ledger_and_the_watermark():
    """One module reads and writes the record of files, runs and batches and the watermark: a question about it
    has one place to look."""
    statement = re.compile(r"\b(?:FROM|UPDATE|INTO|JOIN)\s+tickets\."
                           r"(?:ingest_files|ingest_runs|ingest_batches|import_meta)\b")
    elsewhere = [path.name for path in (ROOT / "fleettickets").glob("*.py")
                 if path.name != "ledger.py" and statement.search(path.read_text(encoding="utf-8"))]
    assert not elsewhere, f"statements on the ledger outside fleettickets/ledger.py: {elsewhere}"
