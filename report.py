"""What a run says: its log lines, and the report of what it did that sets the exit code and the run log.

Shared by the ingest, the history capture and geocoding, none of which needs
the others to speak.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import settings
from changefile import FileCounts


class Log:
    """One-line messages prefixed with the dataset or tool; warnings and errors go to stderr, all redacted."""

    def __init__(self, name: str) -> None:
        self.name = name

    def info(self, message: str) -> None:
        print(f"{self.name}: {settings.redact(message)}", flush=True)

    def warn(self, message: str) -> None:
        print(f"{self.name}: warning: {settings.redact(message)}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"{self.name}: error: {settings.redact(message)}", file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        """A line that the next one overwrites, for a terminal."""
        print(f"\r{message}", end="", file=sys.stderr, flush=True)


@dataclass
class IngestReport:
    """What one ingest run did, for the log, the run log row and the exit code."""

    files_applied: int = 0
    files_archived: int = 0
    files_rejected: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    files_rewritten: int = 0
    """Rewritten by the export during the run: left in changes/ for the next run."""
    files_deferred: int = 0
    """Not started because the run reached FLEETTICKETS_RUN_TIMEOUT: left for the next run."""
    rows: FileCounts = field(default_factory=FileCounts)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.files_rejected or self.files_failed or self.rows.rows_rejected or self.errors)

    def summary(self, *, apply: bool) -> str:
        rows = self.rows
        lead = "done" if apply else "dry run, nothing written or moved"
        rewritten = f", {self.files_rewritten} rewritten during the run" if self.files_rewritten else ""
        rewritten += f", {self.files_deferred} left for the next run (time limit)" if self.files_deferred else ""
        return (f"{lead}: {self.files_applied} files applied, {self.files_archived} archived, "
                f"{self.files_rejected} rejected, {self.files_failed} failed, {self.files_skipped} already "
                f"applied{rewritten}; rows: {rows.inserted} new, {rows.updated} updated, {rows.stale} stale, "
                f"{rows.rows_rejected} rejected")


def describe_counts(counts: FileCounts) -> str:
    return (f"{counts.rows_read} rows read: {counts.inserted} new, {counts.updated} updated, "
            f"{counts.stale} stale; dropped {counts.alarms_dropped} alarms, {counts.sentinels} sentinels, "
            f"{counts.blank_lines} blank lines; folded {counts.duplicates} duplicates; rejected {counts.rows_rejected}")
