"""Waiting and the time it takes: the one seam through which tests make waits instant and record them.

Code that backs off, rate-limits or retries calls `clock.sleep()` and reads
`clock.monotonic()`; a test replaces both with `monkeypatch.setattr(clock, …)`.
"""

from __future__ import annotations

import time


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def monotonic() -> float:
    return time.monotonic()
