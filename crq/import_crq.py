"""python -m crq.import_crq: drain CRQ change files into tickets.crq."""

from __future__ import annotations

from collections.abc import Sequence

import pipeline

DATASET = pipeline.Dataset.standard("crq", lock_id=2)


def main(argv: Sequence[str] | None = None) -> int:
    return pipeline.main(DATASET, argv)


if __name__ == "__main__":
    raise SystemExit(main())
