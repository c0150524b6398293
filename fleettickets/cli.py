"""The command line of a dataset (`python -m inc.import_inc`, `python -m crq.import_crq`).

Its exit codes are the edge's (edge.py): 0 done (or nothing to do, or another
run holds the lock); 1 something was rejected, failed or could not be reached;
2 wrong usage; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fleettickets import edge, pipeline, schema, settings, status
from fleettickets.bucket import Bucket
from fleettickets.dataset import Dataset
from fleettickets.log import Log
from fleettickets.settings import BucketSettings


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes above zero, e.g. 90")
    return value


def build_parser(dataset: Dataset, commands: Sequence[edge.Command] = ()) -> argparse.ArgumentParser:
    name = dataset.name
    parser = argparse.ArgumentParser(
        prog=f"python -m {name}.import_{name}",
        description=f"Drain {name.upper()} change files into {dataset.table}. Without --apply it is a dry run.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-bucket", action="store_true",
                        help=f"read new files from {dataset.changes_prefix} and archive them once applied")
    source.add_argument(f"--{name}-csv", dest="csv", metavar="FILE", nargs="+", type=Path,
                        help="apply local change files instead (in file-name order; nothing is archived)")
    parser.add_argument("--reseed", action="store_true",
                        help="with --from-bucket: apply every file in changes/ again, ignoring the ledger "
                             "(tickets already current stay unchanged)")
    parser.add_argument("--apply", action="store_true",
                        help="write to the database and move files; without it nothing is written or moved")
    parser.add_argument("--status", action="store_true",
                        help="print the watermark, newest file, last runs and row counts, then exit")
    parser.add_argument("--check", action="store_true",
                        help="health check: one line, exit 0 when healthy and 1 when not (last run failed, no recent "
                             "success, the export stopped, files in rejected/ or left unarchived, objects left alone "
                             "in changes/)")
    parser.add_argument("--max-run-age", type=_minutes, default=status.DEFAULT_MAX_RUN_AGE_MIN, metavar="MINUTES",
                        help="with --check: export-hours minutes without a successful run that count as unhealthy "
                             "(default %(default)g)")
    parser.add_argument("--max-file-age", type=_minutes, default=status.DEFAULT_MAX_FILE_AGE_MIN, metavar="MINUTES",
                        help="with --check: export-hours minutes since the newest applied file's export time that "
                             "count as unhealthy (default %(default)g)")
    for command in commands:
        if command.metavar:
            parser.add_argument(command.flag, metavar=command.metavar, type=Path, help=command.help)
        else:
            parser.add_argument(command.flag, action="store_true", help=command.help)
    return parser


def main(dataset: Dataset, argv: Sequence[str] | None = None, commands: Sequence[edge.Command] = ()) -> int:
    """The whole command line of a dataset; returns the exit code."""
    parser = build_parser(dataset, commands)
    args = parser.parse_args(argv)
    chosen = [command for command in commands if getattr(args, command.dest)]
    if len(chosen) > 1 or (chosen and (args.from_bucket or args.csv or args.status or args.check)):
        parser.error("one action at a time: " + ", ".join(c.flag for c in chosen) + " goes on its own (with --apply)")
    if args.reseed and not args.from_bucket:
        parser.error("--reseed works on the bucket: add --from-bucket")
    if args.check and (args.status or args.from_bucket or args.csv):
        parser.error("--check goes on its own (with --max-run-age, --max-file-age)")
    if not (chosen or args.status or args.check or args.from_bucket or args.csv):
        parser.error(f"say where the files are: --from-bucket or --{dataset.name}-csv FILE")
    log = Log(chosen[0].log_name if chosen else dataset.name)

    def body() -> int:
        if args.status:
            return status.print_status(dataset, _bucket_if_configured())
        if args.check:
            return check(dataset, log, args.max_run_age, args.max_file_age)
        # Before anything writes: a database behind this release (or the original system's, not yet adopted)
        # would take part of a run and leave the rest, and its errors would never say what to do.
        unready = schema.database_not_ready()
        if unready:
            log.error(unready)
            return edge.EXIT_FAILED
        if chosen:
            return chosen[0].run(args)
        return pipeline.ingest(dataset, apply=args.apply, reseed=args.reseed, local_files=args.csv or ())

    return edge.run(log, body, interrupted="every file committed so far stays applied",
                    missing_table_hint=" (run the migrations: python run_migrations.py)")


def _bucket_if_configured() -> Bucket | None:
    """The bucket, for --status to list changes/; None when RUSTFS_ENDPOINT is not set (--status still reads the
    database). A bucket configured wrongly is said, not skipped in silence."""
    if not settings.text("RUSTFS_ENDPOINT"):
        return None
    return Bucket(BucketSettings.from_env())


def check(dataset: Dataset, log: Log, max_run_age_min: float, max_file_age_min: float) -> int:
    healthy, line = status.check_health(dataset, max_run_age_min=max_run_age_min, max_file_age_min=max_file_age_min,
                                        bucket=Bucket(BucketSettings.from_env()))
    log.info(line)
    return edge.EXIT_OK if healthy else edge.EXIT_FAILED
