"""What every command says: one redacted line at a time, prefixed with the dataset or tool.

Shared by the ingest, the history capture, geocoding and the migration runner,
none of which needs the others to speak.
"""

from __future__ import annotations

import sys

from fleettickets import outward


class Log:
    """One-line messages prefixed with the dataset or tool; warnings and errors go to stderr, all redacted."""

    def __init__(self, name: str) -> None:
        self.name = name

    def info(self, message: str) -> None:
        print(f"{self.name}: {outward.line(message)}", flush=True)

    def warn(self, message: str) -> None:
        print(f"{self.name}: warning: {outward.line(message)}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"{self.name}: error: {outward.line(message)}", file=sys.stderr, flush=True)

    def progress(self, message: str) -> None:
        """A line that the next one overwrites, for a terminal."""
        print(f"\r{message}", end="", file=sys.stderr, flush=True)
