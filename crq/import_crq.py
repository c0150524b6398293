"""python -m crq.import_crq: drain CRQ change files into tickets.crq."""

from __future__ import annotations

from collections.abc import Sequence

import cli
from dataset import Dataset

DATASET = Dataset.standard("crq")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(DATASET, argv)


if __name__ == "__main__":
    raise SystemExit(main())
