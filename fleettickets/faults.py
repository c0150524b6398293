"""The crash-test hook: named steps of a run at which a test makes the process kill or freeze itself.

Inert unless FLEETTICKETS_FAULT names a step. `tests/engine/test_crash_points.py` is
parametrized straight from FAULT_POINTS, so every step named here is proven.
"""

from __future__ import annotations

import os
import signal

FAULT_VARIABLE = "FLEETTICKETS_FAULT"
FAULT_POINTS = frozenset({
    "after_list", "mid_copy", "before_commit", "after_commit", "after_copy_object", "mid_post_apply",
})


def fault(point: str) -> None:
    """Kill the process (SIGKILL) at `point`, or freeze it (SIGSTOP) at `point:stop`, when the variable says so.

    Freezing lets a test break something underneath the run, then let it go on (SIGCONT).
    """
    wanted = os.environ.get(FAULT_VARIABLE)
    if wanted == point:
        os.kill(os.getpid(), signal.SIGKILL)
    elif wanted == f"{point}:stop":
        os.kill(os.getpid(), signal.SIGSTOP)
