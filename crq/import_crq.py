"""python -m crq.import_crq: drain CRQ change files into tickets.crq, then capture its history."""

from __future__ import annotations

from collections.abc import Sequence

from fleettickets import cli, history
from fleettickets.dataset import Dataset

DATASET = Dataset.standard("crq", post_apply=history.capture)

COMMANDS = (history.capture_command(DATASET),)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(DATASET, argv, COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
