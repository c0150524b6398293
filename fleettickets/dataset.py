"""A ticket stream as the engine sees it: where its change files are and where its rows go.

INC and CRQ share one source schema, so a `Dataset` is all that tells them
apart; `inc/` and `crq/` each build one and hand it to the command line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from fleettickets import sourcetime


@dataclass(frozen=True)
class Dataset:
    """One ticket stream: where its files are and where its rows go."""

    name: str
    """Short id used in logs, locks (see locks.py) and the ledger: 'inc' or 'crq'."""
    table: str
    """Target table, schema-qualified: 'tickets.inc'."""
    ticket_prefix: str
    """Every ticket_id is this prefix plus 12 digits: 'INC'."""
    changes_prefix: str
    """Bucket prefix the export writes to: 'automations/inc/changes/'."""
    processed_prefix: str
    """Where applied files are moved: 'automations/inc/processed/'."""
    rejected_prefix: str
    """Where files that cannot be applied are moved, with a .error.txt beside them."""
    key_pattern: re.Pattern[str]
    """A change-file key; group 'stamp' is the EAT export time that orders files."""
    post_apply: Callable[[psycopg.Connection, Dataset], str | None] | None = None
    """Runs after every --apply run, also when nothing was new, given the dataset; returns a line to report."""

    @classmethod
    def standard(cls, name: str,
                 post_apply: Callable[[psycopg.Connection, Dataset], str | None] | None = None) -> Dataset:
        """The layout of the source contract: automations/<name>/{changes,processed,rejected}/."""
        base = f"automations/{name}/"
        return cls(
            name=name,
            table=f"tickets.{name}",
            ticket_prefix=name.upper(),
            changes_prefix=base + "changes/",
            processed_prefix=base + "processed/",
            rejected_prefix=base + "rejected/",
            key_pattern=re.compile(re.escape(base + "changes/") + sourcetime.STAMP_PATTERN + r"\.csv"),
            post_apply=post_apply,
        )

    @property
    def ticket_id_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.ticket_prefix) + r"[0-9]{12}")

    @property
    def ticket_id_description(self) -> str:
        """The pattern in words, for messages: 'INC + 12 digits'."""
        return f"{self.ticket_prefix} + 12 digits"

    @property
    def table_identifier(self) -> sql.Identifier:
        return sql.Identifier(*self.table.split("."))
