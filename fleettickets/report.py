"""What an ingest run did: the report that sets its exit code and its run-log row, and how a file or batch is
described in its lines (the lines themselves are log.py's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleettickets.changefile import FileCounts


@dataclass
class TicketCounts:
    """What writing a batch's rows did to the tickets: each ticket is written once per batch."""

    staged: int = 0
    duplicates: int = 0
    """Versions folded away: the same ticket again, in the same file or a later one of the batch."""
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    """Versions older than the stored one: left as they were."""
    untimed: int = 0
    """Rows without a readable source_updated_at, ordered by their file's export time instead (a data-quality
    warning: the ITSM export should always fill it)."""

    def add(self, other: TicketCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class IngestReport:
    """What one ingest run did, for the log, the run log row and the exit code."""

    files_applied: int = 0
    files_archived: int = 0
    files_rejected: int = 0
    files_failed: int = 0
    files_already_applied: int = 0
    files_rewritten: int = 0
    """Rewritten by the export during the run: left in changes/ for the next run."""
    files_deferred: int = 0
    """Not started because the run reached FLEETTICKETS_RUN_TIMEOUT: left for the next run."""
    batches: int = 0
    rows: FileCounts = field(default_factory=FileCounts)
    tickets: TicketCounts = field(default_factory=TicketCounts)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.files_rejected or self.files_failed or self.rows.rows_rejected or self.errors)

    @property
    def why_not_ok(self) -> str:
        """What made the run fail, in one line for its log row (which --status and --check show): its errors, else
        what it rejected or left; empty for a run that is ok."""
        if self.errors:
            return "; ".join(self.errors)
        return "; ".join(said for count, said in (
            (self.files_rejected, f"{self.files_rejected} file(s) rejected, moved to rejected/ with the reason beside"),
            (self.files_failed, f"{self.files_failed} file(s) failed, left in changes/ for the next run"),
            (self.rows.rows_rejected, f"{self.rows.rows_rejected} row(s) rejected, kept in tickets.rejected_rows"),
        ) if count)

    def summary(self, *, apply: bool) -> str:
        rows, tickets = self.rows, self.tickets
        lead = "done" if apply else "dry run, nothing written or moved"
        rewritten = f", {self.files_rewritten} rewritten during the run" if self.files_rewritten else ""
        rewritten += f", {self.files_deferred} left for the next run (time limit)" if self.files_deferred else ""
        return (f"{lead}: {self.files_applied} files applied, {self.files_archived} archived, "
                f"{self.files_rejected} rejected, {self.files_failed} failed, {self.files_already_applied} already "
                f"applied{rewritten}; rows: {tickets.inserted} new, {tickets.updated} updated, {tickets.stale} "
                f"stale, {rows.rows_rejected} rejected")


def describe_file(counts: FileCounts, tickets: TicketCounts | None) -> str:
    """One file's line: what it held, and (when it was applied alone) what it did to the tickets."""
    written = (f": {tickets.inserted} new, {tickets.updated} updated, {tickets.stale} stale"
               if tickets is not None else "")
    folded = f"; folded {tickets.duplicates} duplicates" if tickets is not None else ""
    return (f"{counts.rows_read} rows read{written}; dropped {counts.alarms_dropped} alarms, {counts.sentinels} "
            f"sentinels, {counts.blank_lines} blank lines{folded}; rejected {counts.rows_rejected}")


def describe_batch(files: int, tickets: TicketCounts) -> str:
    return (f"a batch of {files} files in one transaction: {tickets.staged} rows, {tickets.inserted} new, "
            f"{tickets.updated} updated, {tickets.stale} stale; folded {tickets.duplicates} duplicates")
