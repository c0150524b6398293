"""The edge of every command: exit codes, the actions a command line adds, any error as one line.

The ingest's command line (cli.py) and the migration runner (schema.py) end
here; it loads nothing of the engine, so the runner and the history capture
start without the bucket, the reader or the loader.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from fleettickets import outward, settings
from fleettickets.database import describe_error
from fleettickets.errors import FleetError
from fleettickets.log import Log

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's own
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: docker stop, systemd, a cron timeout
EXIT_HANGUP = 128 + signal.SIGHUP  # 129: the terminal or session went away
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the run is, like Ctrl-C.

    A KeyboardInterrupt so that everything that makes Ctrl-C safe applies unchanged: psycopg cancels the query
    in flight, transactions roll back, the run's log row is closed in the pipeline's `finally`.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


def run(log: Log, body: Callable[[], int], *, interrupted: str, missing_table_hint: str = "") -> int:
    """Run `body` and return its exit code; any exception becomes one redacted line on stderr and its exit code.

    `interrupted` says what Ctrl-C leaves behind; `missing_table_hint` is added to an undefined-table error.
    """
    quiet_libraries()
    previous = _end_on_signals()
    try:
        return body()
    except Terminated as ended:
        log.error(f"terminated by {signal.Signals(ended.signum).name}; {interrupted}")
        return 128 + ended.signum
    except FleetError as error:
        log.error(str(error))
    except psycopg.errors.UndefinedTable as error:
        log.error(f"database: {describe_error(error)}{missing_table_hint}")
    except psycopg.Error as error:
        log.error(f"database: {describe_error(error)}")
    except KeyboardInterrupt:
        log.error(f"interrupted; {interrupted}")
        return EXIT_INTERRUPTED
    except Exception as error:  # the last resort: one redacted line, never a raw traceback
        _last_resort(log, error)
    finally:
        for ending, handler in previous.items():
            signal.signal(ending, handler)
    return EXIT_FAILED


def _end_on_signals() -> dict[signal.Signals, Any]:
    """SIGTERM and SIGHUP end the command as Ctrl-C does; a second one while it winds down is ignored, so the
    cleanup (rolling back, closing the run's log row) is not cut short. Returns the handlers it replaced."""
    def handler(signum: int, _frame: object) -> None:
        for ending in ENDING_SIGNALS:
            signal.signal(ending, signal.SIG_IGN)
        raise Terminated(signum)

    return {ending: signal.signal(ending, handler) for ending in ENDING_SIGNALS}


def quiet_libraries() -> None:
    """Libraries' own log records (psycopg's "error ignored terminating copy" after a lost connection) would
    print beside our one line; what they report is in that line already."""
    for name in ("psycopg", "botocore", "httpx"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False


def _last_resort(log: Log, error: Exception) -> None:
    """An error nobody foresaw: one redacted line (and, with FLEETTICKETS_DEBUG=1, a redacted traceback)."""
    log.error(f"unexpected {type(error).__name__}: {' '.join(str(error).split())} (this is a bug: please report "
              "it with the lines above; FLEETTICKETS_DEBUG=1 adds a traceback)")
    if settings.debug():
        print(outward.block("".join(traceback.format_exception(error))), file=sys.stderr, end="")
