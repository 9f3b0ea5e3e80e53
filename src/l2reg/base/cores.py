"""One core for a small run, for the time of a command.

Measured (bench/bench_blocked.py, bench/bench_train.py): at m = 10 one
model's step is too small to share, and XLA's pool waking the second core
costs more than it gives (K = 1: 1.2–1.8× faster on one core). The command
line pins itself for the run (effective only before JAX's first computation)
and gives the affinity back on leaving, so a command run inside another
program's process (a test runner, a notebook) leaves that process on every
core it had. The library never pins: it would change its caller's process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

#: ``L2REG_ONE_CORE=0`` keeps a small run on every core.
ENV = "L2REG_ONE_CORE"
#: Fewer models than this train faster on one core (the engine's blocked path pays from as many).
BELOW = 4


@contextmanager
def one_core_for(K: int):
    """Within the block, this process on one core when it trains fewer than :data:`BELOW` models; yields
    whether it pinned. The core is chosen by the process id, so that two small runs started together are
    likely on different cores (the lowest one for all would put them on one)."""
    if K >= BELOW or os.environ.get(ENV, "1") == "0" or not hasattr(os, "sched_setaffinity"):
        yield False
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield False
        return
    os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})
    try:
        yield True
    finally:
        os.sched_setaffinity(0, cpus)
