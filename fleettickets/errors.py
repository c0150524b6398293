"""The errors an operator can act on: each prints as one line, `<dataset or tool>: error: …`, and exits 1.

Named here so that every module raises the same few kinds and the command
line (cli.py, run_migrations.py) translates them once, at the edge.
"""

from __future__ import annotations


class FleetError(Exception):
    """An error the operator can act on; the command line prints it as one line."""


class ConfigError(FleetError):
    """A required setting is missing or malformed."""


class DatabaseUnavailable(FleetError):
    """The database could not be reached or went away."""


class RunAborted(FleetError):
    """The run cannot go on (database or bucket unreachable); what was committed stays."""
