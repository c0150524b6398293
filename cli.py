"""The command line of a dataset (`python -m inc.import_inc`, `python -m crq.import_crq`), and its exit codes.

The only place that turns exceptions into one line and an exit code:
0 done (or nothing to do, or another run holds the lock); 1 something was
rejected, failed or could not be reached; 2 wrong usage; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

import pipeline
import settings
import status
from bucket import Bucket
from database import describe_error
from dataset import Dataset
from errors import FleetError
from report import Log
from settings import BucketSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


@dataclass(frozen=True)
class Command:
    """An action an entrypoint adds beside the ingest, e.g. --geocode-clusters."""

    flag: str
    help: str
    run: Callable[[argparse.Namespace], int]
    """Called with the parsed arguments (args.apply is the dry-run switch); returns the exit code."""
    log_name: str
    """How its lines, errors included, are prefixed: 'geocode'."""
    metavar: str | None = None
    """Set when the flag takes a value, e.g. FILE."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes above zero, e.g. 90")
    return value


def build_parser(dataset: Dataset, commands: Sequence[Command] = ()) -> argparse.ArgumentParser:
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
                             "success, the export stopped, files in rejected/ or left unarchived)")
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


def main(dataset: Dataset, argv: Sequence[str] | None = None, commands: Sequence[Command] = ()) -> int:
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
    quiet_libraries()
    try:
        if args.status:
            return status.print_status(dataset)
        if args.check:
            return check(dataset, log, args.max_run_age, args.max_file_age)
        if chosen:
            return chosen[0].run(args)
        return pipeline.ingest(dataset, apply=args.apply, reseed=args.reseed, local_files=args.csv or ())
    except FleetError as error:
        log.error(str(error))
    except psycopg.errors.UndefinedTable as error:
        log.error(f"database: {describe_error(error)} (run the migrations: python run_migrations.py)")
    except psycopg.Error as error:
        log.error(f"database: {describe_error(error)}")
    except KeyboardInterrupt:
        log.error("interrupted; every file committed so far stays applied")
        return EXIT_INTERRUPTED
    except Exception as error:  # the last resort: one redacted line, never a raw traceback
        last_resort(log, error)
    return EXIT_FAILED


def check(dataset: Dataset, log: Log, max_run_age_min: float, max_file_age_min: float) -> int:
    bucket = Bucket(BucketSettings.from_env())
    waiting = sum(1 for obj in bucket.list(dataset.rejected_prefix) if not obj.key.endswith(".error.txt"))
    healthy, line = status.check_health(dataset, max_run_age_min=max_run_age_min, max_file_age_min=max_file_age_min,
                                        rejected_waiting=waiting)
    log.info(line)
    return EXIT_OK if healthy else EXIT_FAILED


def quiet_libraries() -> None:
    """Libraries' own log records (psycopg's "error ignored terminating copy" after a lost connection) would
    print beside our one line; what they report is in that line already."""
    for name in ("psycopg", "botocore", "httpx"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False


def last_resort(log: Log, error: Exception) -> None:
    """An error nobody foresaw: one redacted line (and, with FLEETTICKETS_DEBUG=1, a redacted traceback)."""
    log.error(f"unexpected {type(error).__name__}: {' '.join(str(error).split())} (this is a bug: please report "
              "it with the lines above; FLEETTICKETS_DEBUG=1 adds a traceback)")
    if settings.debug():
        print(settings.redact("".join(traceback.format_exception(error))), file=sys.stderr, end="")
