"""The landed release this tree upgrades from, and its files: upgrade tests build "the database at migration N"
from what the field really ran, never from this tree's copy of it.

Move PREVIOUS_RELEASE to the landed main's commit whenever a change to migrations/ lands.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import devstack
from fleettickets import schema
from support import hostile

ROOT = Path(__file__).resolve().parents[2]

PREVIOUS_RELEASE = "9dfbebcd58d63c8652a05c5897c00b2aa38886e6"
"""Main as landed at stop 34: migrations 01-24 and the read layer, before migration 25."""

RELEASE_BEFORE_21 = "7fb130821bcb615f7f9b6fb89470a3aa37df7631"
"""Main as landed at stop 23: migrations 01-19, the database migration 21's upgrade tests start from."""

VERSIONED_ONLY_RELEASE = "3c71aa961ef538f368df930d751a083ef8db9ba6"
"""The last release whose runner applied versioned files alone: "the database at migration N" (N < 19) is built
with it, since a later runner applies the whole read layer, which needs every versioned file."""


def checkout(commit: str, into: Path) -> Path:
    """The tree of `commit` extracted into `into` (git archive): no work tree, no .git."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], capture_output=True,
                             check=False)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {commit} failed (is this a clone with its history?): "
                           f"{archive.stderr.decode(errors='replace').strip()}")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # Debian 12's Python 3.11.2 predates extraction filters; the archive is this repository's own history
            tar.extractall(into)
    return into


def migrate_with(tree: Path, database_url: str, *, up_to: int | None = None) -> subprocess.CompletedProcess:
    """Run `tree`'s own migration runner against `database_url`, with its versioned files after `up_to` left out."""
    migrations = tree / "migrations"
    if up_to is not None:
        for path in migrations.glob("*.sql"):
            if int(path.name.split("_", 1)[0]) > up_to:
                path.unlink()
    return subprocess.run([sys.executable, "run_migrations.py", "--dir", str(migrations)], cwd=tree,
                          capture_output=True, text=True, env=as_the_field_ran({**os.environ,
                                                                                "DATABASE_URL": database_url}),
                          check=False)


def as_the_field_ran(env: dict[str, str]) -> dict[str, str]:
    """An earlier release's process ran on the server it was deployed to, not on the hostile bed: on that bed it
    is given PostgreSQL's defaults (it predates pinning its own)."""
    if os.environ.get("FLEETTICKETS_TEST_BED") == "hostile":
        return {**env, "PGOPTIONS": hostile.FIELD_OPTIONS}
    return env


def original_files() -> list[schema.SqlFile]:
    """The versioned files the original system applied with its own runner: 01-13."""
    return [m for m in schema.discover().versioned if m.number <= 13]


def psql_file(url: str, path: object) -> None:
    """One file as the original runner applied it: psql, one transaction, no tracking of ours."""
    subprocess.run([str(devstack.postgres_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                    "--single-transaction", "-f", str(path), url], check=True, capture_output=True, text=True,
                   timeout=120, env=as_the_field_ran(dict(os.environ)))
