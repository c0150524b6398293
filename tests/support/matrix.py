"""Fault points crossed with a test's variants: every point and every variant in the default suite, the whole
product under `-m slow` (`.ci/run` runs both)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest


def each_point_once(points: Iterable[str], variants: Sequence[tuple[str, tuple[object, ...]]]) -> list:
    """pytest params (point, *values) for every pair: the i-th point with the (i mod n)-th variant by default, the
    others marked slow. Ids read '<point>-<variant>', as a stacked parametrize names them."""
    return [pytest.param(point, *values, id=f"{point}-{name}",
                         marks=() if offset == index % len(variants) else (pytest.mark.slow,))
            for index, point in enumerate(points)
            for offset, (name, values) in enumerate(variants)]
