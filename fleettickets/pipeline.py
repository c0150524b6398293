"""The ingest engine, top down: one run drains a dataset's change files into PostgreSQL, then archives them.

    ingest()                      this module: lock, plan, apply files in batches, move them, log, post-apply
      plan.bucket_plan()          what to do with each file of changes/ (the ledger decides)
      load.Batch                  waiting files in one transaction: stream → stage → fold → upsert → ledger
      ledger                      the ledger of file versions, the watermark, the run log
      bucket.Bucket               list, read, copy and delete — each naming the version listed

Dataset-agnostic: `inc/` and `crq/` each build a `Dataset` and call
`cli.main()`. Only after a file's commit is it moved to `processed/`, so a run
killed at any point leaves either an unapplied file (applied next run) or an
applied one still in `changes/` (archived next run, never re-applied).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import psycopg

from fleettickets import clock, database, ledger, load, locks, outcome, outward
from fleettickets.bucket import Bucket
from fleettickets.changefile import FileCounts, RejectedFile, Source
from fleettickets.database import describe_error, lost_connection_ends_run, refused_by_data
from fleettickets.dataset import Dataset
from fleettickets.errors import FleetError, RunAborted
from fleettickets.faults import fault
from fleettickets.log import Log
from fleettickets.outcome import Fate, Outcome
from fleettickets.plan import Action, Plan, Step, bucket_plan, local_plan
from fleettickets.report import IngestReport, TicketCounts, describe_batch, describe_file
from fleettickets.settings import BucketSettings, RunLimits

# botocore retries whole requests itself; a body that breaks off midway is
# read again this many times before the file is left for the next run.
READ_ATTEMPTS = 3


def ingest(dataset: Dataset, *, apply: bool, reseed: bool = False, local_files: Sequence[Path] = ()) -> int:
    """One run: lock, plan, apply, archive, log, post-apply. Returns the exit code."""
    started = clock.monotonic()
    log = Log(dataset.name)
    limits = RunLimits.from_env()
    bucket = None if local_files else Bucket(BucketSettings.from_env())
    for warning in limits.stall_warnings(bucket.object_timeout_s if bucket else None):
        log.warn(warning)
    with database.connect(limits=limits) as conn:
        if not locks.try_lock(conn, dataset.name):
            stranger = locks.held_by_stranger(conn, dataset.name)
            if stranger:
                log.error(locks.stranger_holds(dataset.name, stranger))
                return 1
            dead = locks.end_dead_run(conn, dataset.name, limits.stall_s)
            if dead is None:
                log.info("another run of this dataset holds the lock; nothing to do (this is normal when runs "
                         "overlap)")
                return 0
            log.warn(f"the {dataset.name} lock was held by a run whose database link died (pid {dead.pid}, silent "
                     f"in state {dead.state!r} for over FLEETTICKETS_DATABASE_STALL_TIMEOUT): ended it; this run "
                     "goes on")
            locks.lock(conn, dataset.name, wait_s=limits.lock_timeout_s)
        load.prepare(conn)
        if bucket is None:
            plan = local_plan(local_files)
        else:
            plan = bucket_plan(conn, dataset, bucket, log, reseed=reseed)
            if apply:
                with lost_connection_ends_run(conn, "reconciling the ledger with the bucket"):
                    ledger.reconcile_archived(conn, dataset, plan.keys_in_changes)
        run = IngestRun(conn, dataset, apply=apply, log=log, bucket=bucket, limits=limits,
                        deadline=started + limits.run_timeout_s)
        run_id = ledger.start_run_log(conn, dataset, "reseed" if reseed else "local" if local_files else "bucket") \
            if apply else None
        try:
            run.run(plan, show_progress=reseed and sys.stderr.isatty())
        except BaseException as error:  # whatever ends the run, its log row says failed and why
            run.report.errors.append(str(error) if isinstance(error, FleetError)
                                     else f"{type(error).__name__}: {' '.join(str(error).split())}")
            raise
        finally:
            if run_id is not None:
                ledger.finish_run_log(conn, dataset, run_id, run.report)
        if apply and dataset.post_apply:
            with lost_connection_ends_run(conn, "running the post-apply step"), conn.transaction():
                outcome = dataset.post_apply(conn, dataset)
                fault("mid_post_apply")
            if outcome:
                log.info(outcome)
        if plan.steps:
            log.info(run.report.summary(apply=apply))
        else:
            log.info("nothing new: no change files waiting")
        return 0 if run.report.ok else 1


class IngestRun:
    """One run over one dataset: the files of its plan, in order, and what became of each."""

    def __init__(self, conn: psycopg.Connection, dataset: Dataset, *, apply: bool, log: Log,
                 bucket: Bucket | None, limits: RunLimits, deadline: float) -> None:
        self.conn = conn
        self.dataset = dataset
        self.apply = apply
        self.log = log
        self.bucket = bucket
        self.limits = limits
        self.report = IngestReport()
        self.deadline = deadline
        """clock.monotonic() after which no new file is started (FLEETTICKETS_RUN_TIMEOUT from the run's start)."""

    def run(self, plan: Plan, *, show_progress: bool = False) -> IngestReport:
        # A dry run applies everything in one transaction that is rolled back at
        # the end, each batch in a savepoint: its counts see the batches before it.
        with self.conn.transaction(force_rollback=True) if not self.apply else nullcontext():
            waiting: list[Source] = []
            for number, step in enumerate(plan.steps, start=1):
                if not waiting and clock.monotonic() > self.deadline:
                    self.report.files_deferred = len(plan.steps) - number + 1
                    self.log.warn(f"the run has taken over {self.limits.run_timeout_s:g} s (FLEETTICKETS_RUN_TIMEOUT): "
                                  f"{self.report.files_deferred} files wait for the next run")
                    break
                if show_progress:
                    self.log.progress(f"[{number}/{len(plan.steps)}] {step.source.name}")
                if step.action is Action.APPLY:
                    waiting.append(step.source)
                    if self.batch_is_full(waiting):
                        self.apply_batch(waiting)
                        waiting = []
                    continue
                if waiting:
                    self.apply_batch(waiting)
                    waiting = []
                self.take(step)
            if waiting:
                self.apply_batch(waiting)
            if show_progress and plan.steps:
                print(file=sys.stderr)
        return self.report

    def batch_is_full(self, waiting: list[Source]) -> bool:
        return (len(waiting) >= self.limits.batch_files
                or sum(source.size or 0 for source in waiting) >= self.limits.batch_bytes)

    def take(self, step: Step) -> None:
        """A file an earlier run applied or rejected, but did not get to move."""
        source = step.source
        self.report.files_already_applied += 1
        if not self.apply:
            return
        if step.action is Action.ARCHIVE:
            self.log.info(f"archiving {source.name}: already applied by an earlier run (same ETag), not applied again")
            self.archive(source)
        else:
            with lost_connection_ends_run(self.conn, f"reading why {source.key} was rejected"):
                reason = ledger.rejection_reason(self.conn, self.dataset, source)
            self.log.info(f"moving {source.name} to rejected/ (rejected by an earlier run: {reason})")
            self.move_rejected(source, reason)

    # -- applying ------------------------------------------------------------------------------------------

    def apply_batch(self, sources: list[Source]) -> None:
        """Apply files in one transaction (a savepoint in a dry run), each ticket written once, then archive them.

        A file that cannot be read or that the database refuses whole is left out of the batch (rejected, or left
        for the next run) and the others apply. A batch the database refuses as a whole is split into files.
        """
        started = clock.monotonic()
        rejections: list[tuple[Source, RejectedFile]] = []
        staged: list[load.Staged] = []
        what = sources[0].key if len(sources) == 1 else f"a batch of {len(sources)} files from {sources[0].key}"
        try:
            with lost_connection_ends_run(self.conn, f"applying {what}"), self.conn.transaction():
                batch = load.Batch(self.conn, self.dataset, self.limits)
                for source in sources:
                    self.stage(batch, source, rejections)
                staged = batch.files
                tickets = batch.write() if staged else None
                fault("before_commit")
        except (RejectedFile, psycopg.Error) as error:
            refused_for_content = isinstance(error, RejectedFile) or refused_by_data(error)
            if refused_for_content and len(staged) > 1:  # refused as a whole: find the file by applying each alone
                self.log.warn(f"the database refused {what} as a whole; applying its files one by one")
                for source, rejected in rejections:
                    self.reject(source, rejected)
                for staged_file in staged:
                    self.apply_batch([staged_file.source])
                return
            refused = staged[0].source if staged else sources[0]
            found = outcome.of_staging(error, refused) if isinstance(error, RejectedFile) else outcome.of_database(
                error, what, refused_whole=RejectedFile(refused.key, None,
                                                        f"the database refuses the file: {describe_error(error)}"))
            if found.fate is not Fate.REJECTED:
                # The moment's (a deadlock, a serialization failure): all of it is tried again next run.
                if found.fate is Fate.RUN_ENDS:
                    self.settle(refused, found)
                rejected_keys = {source.key for source, _ in rejections}
                for source, reason in rejections:
                    self.reject(source, reason)
                for source in sources:
                    if source.key not in rejected_keys:
                        self.settle(source, found)
                return
            self.settle(refused, found, rejections)
            staged = []
            tickets = None
        fault("after_commit")
        self.report_batch(staged, tickets, started)
        for source, rejected in rejections:
            self.reject(source, rejected)
        for staged_file in staged:
            self.archive(staged_file.source)

    def stage(self, batch: load.Batch, source: Source, rejections: list[tuple[Source, RejectedFile]]) -> None:
        """Stage one file of the batch; what cannot be staged meets its fate (outcome.of_staging)."""
        started = clock.monotonic()
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                batch.stage(source)
                return
            except (FleetError, psycopg.Error) as error:
                if isinstance(error, psycopg.Error) and (self.conn.broken or self.conn.closed):
                    raise  # the run ends: lost_connection_ends_run says so in one line
                found = outcome.of_staging(error, source)
                if found.fate is Fate.READ_AGAIN:
                    # A body that broke off is read again, unless that has already taken the object's time.
                    spent = self.bucket is not None and clock.monotonic() - started > self.bucket.object_timeout_s
                    if attempt < READ_ATTEMPTS and not spent:
                        self.log.warn(f"{found.line}; reading it again ({attempt}/{READ_ATTEMPTS - 1})")
                        clock.sleep(attempt)
                        continue
                    found = Outcome(Fate.LEFT, found.line)
                self.settle(source, found, rejections)
                return

    def settle(self, source: Source, found: Outcome, rejections: list[tuple[Source, RejectedFile]] | None = None
               ) -> None:
        """Carry out a file's fate: the one place the engine acts on a failure (outcome.Fate)."""
        if found.fate is Fate.RUN_ENDS:
            raise RunAborted(found.line)
        if found.fate is Fate.REJECTED:
            assert found.rejected is not None and rejections is not None
            rejections.append((source, found.rejected))  # moved after the batch's commit
        elif found.fate is Fate.LEFT:
            self.fail(source, found.line)
        elif found.fate is Fate.REWRITTEN:
            self.report.files_rewritten += 1
            self.log.warn(found.line)
        elif found.fate is Fate.GONE:
            self.log.warn(found.line)
        elif found.fate is Fate.MOVED_NEXT_RUN:
            self.report.errors.append(found.cause or found.line)
            self.log.error(found.line)
        else:
            raise AssertionError(f"unsettled fate {found.fate}")

    def report_batch(self, staged: list[load.Staged], tickets: TicketCounts | None, started: float) -> None:
        if not staged or tickets is None:
            return
        verb = "applied" if self.apply else "would apply"
        took = f"({(clock.monotonic() - started) * 1000:.0f} ms)"
        alone = len(staged) == 1
        for staged_file in staged:
            line = describe_file(staged_file.counts, tickets if alone else None)
            self.log.info(f"{verb} {staged_file.source.name}: {line}{' ' + took if alone else ''}")
            self.report.rows.add(staged_file.counts)
        if not alone:
            self.log.info(f"{verb} {describe_batch(len(staged), tickets)} {took}")
        if tickets.untimed:
            self.log.warn(f"{tickets.untimed} rows of {', '.join(s.source.name for s in staged)} have no readable "
                          "source_updated_at: each was ordered by its file's export time (the later file wins)")
        self.report.files_applied += len(staged)
        self.report.batches += 1
        self.report.tickets.add(tickets)

    def fail(self, source: Source, message: str) -> None:
        self.report.files_failed += 1
        self.report.errors.append(message)
        self.log.error(f"{message}; {source.key} stays in changes/ for the next run")

    def reject(self, source: Source, rejected: RejectedFile) -> None:
        self.report.files_rejected += 1
        self.log.error(f"{'rejected' if self.apply else 'would reject'} {rejected}")
        with lost_connection_ends_run(self.conn, f"recording the rejection of {source.key}"), \
                self.conn.transaction(), self.conn.cursor() as cur:
            ledger.record_file(cur, self.dataset, source, "rejected", FileCounts(), error=rejected.where)
        self.move_rejected(source, rejected.where)

    # -- moving files --------------------------------------------------------------------------------------

    def archive(self, source: Source) -> None:
        """Move an applied file to processed/."""
        self.move(source, self.dataset.processed_prefix)

    def move_rejected(self, source: Source, reason: str) -> None:
        """Move a rejected file to rejected/ with a .error.txt beside it saying what is wrong."""
        self.move(source, self.dataset.rejected_prefix, reason)

    def move(self, source: Source, prefix: str, reason: str | None = None) -> None:
        """Move a file out of changes/ to `prefix`: processed/ when applied, rejected/ with `reason` when not.
        Copy first, so a crash never loses it; delete; then record the move in the ledger."""
        if not self.apply or self.bucket is None:
            return
        applied = reason is None
        if source.archived_copy:  # caught up from processed/, where it stays
            if applied:
                with lost_connection_ends_run(self.conn, f"recording that {source.key} is archived"):
                    ledger.mark_archived(self.conn, self.dataset, source, source.etag)
            else:
                self.log.warn(f"{source.archived_copy} stays in processed/ (an archived copy is never moved); "
                              "the ledger records it as rejected")
            return
        destination = prefix + source.archived_name
        try:
            copy_etag = self.bucket.copy(source.key, source.etag, destination)
            if reason is not None:
                self.bucket.put_text(destination + ".error.txt",
                                     f"{outward.line(source.key)}\n{outward.line(reason)}\n")
            fault("after_copy_object")
            self.bucket.delete(source.key, source.etag)
        except FleetError as error:
            self.settle(source, outcome.of_moving(error, source, destination, applied=applied))
            return
        with lost_connection_ends_run(self.conn, f"recording that {source.key} was moved to {destination}"):
            ledger.mark_archived(self.conn, self.dataset, source, copy_etag)
        if applied:
            self.report.files_archived += 1
