"""What the benchmark scripts share: the load average, the machine, verdicts, child processes, the engine.

The scripts run as ``python bench/NAME.py``, so ``bench/`` is on ``sys.path``
and they import this module as ``_common``. Nothing here imports JAX at
import time: a script whose contenders run in fresh child processes (so
that ``l2reg.base.cores.one_core_for`` can still pin them) must not start JAX
in the parent before it means to.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time


def load() -> str:
    """The load average, as printed beside every timing: ``load 1.23 1.10 0.98``."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def load1() -> float:
    return os.getloadavg()[0]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_name()}, {cores} of {os.cpu_count()} cores"


def header(what: str) -> str:
    """The first line of every script's output: date, machine, what runs, the load."""
    return f"{time.strftime('%Y-%m-%d %H:%M')}  {machine()}  {what}  ({load()})"


def median(xs) -> float:
    return float(statistics.median(xs))


def verdict(what: str, value: float, target: float, *, goal: float | None = None, unit: str = "×",
            lower_is_better: bool = False) -> str:
    """One honest line: met or missed, and by how much (relative to the target).

    ``value`` against ``target`` (and the ``goal`` beyond it): higher is
    better unless ``lower_is_better`` (times).
    """
    ok = value <= target if lower_is_better else value >= target
    r = value / target
    line = f"{what}: {value:.3g}{unit} against the target {'≤' if lower_is_better else '≥'} {target:g}{unit}: "
    if lower_is_better:
        line += f"MET ({(1 - r) * 100:.0f}% under it)" if ok else f"MISSED ({(r - 1) * 100:.0f}% over it)"
    else:
        line += f"MET ({r:.2f}× the target)" if ok else f"MISSED ({r * 100:.0f}% of the target, {(1 - r) * 100:.0f}% short)"
    if goal is not None:
        g_ok = value <= goal if lower_is_better else value >= goal
        line += f"; goal {goal:g}{unit} {'met' if g_ok else 'not met'}"
    return line


def l2reg_command() -> list[str]:
    """The ``l2reg`` console script as a user runs it (else the same entry point through this Python)."""
    script = shutil.which("l2reg")
    return [script] if script else [sys.executable, "-m", "l2reg._entry"]


def clean_env(**overrides) -> dict:
    """This environment without the l2reg switches a caller may have set, plus ``overrides`` (None drops one)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("L2REG_ENGINE", "L2REG_ONE_CORE", "L2REG_COMPILE_CACHE", "L2REG_HELPER")}
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run_json(cmd: list[str], *, env: dict | None = None, cwd: str | None = None) -> dict:
    """Run a child that prints one JSON object on its last stdout line; return it (raise with its stderr)."""
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_run(cmd: list[str], *, env: dict | None = None, cwd: str | None = None) -> float:
    """Wall seconds of a child process, start-up included; raise with its stderr on failure."""
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def fit_stack(spec, X, Y, *, groups, group_seeds, lmbda, eta, momentum=None, weight_decay=None, eval_sets=None,
              monitor=(), on_epoch=None, **options):
    """:func:`l2reg.core.engine.fit_stack` with flat keyword arguments (as ``tests/stacks.py``'s adapter).

    ``lmbda``, ``eta``, ``momentum``, ``weight_decay``: one number or one per
    model (K = len(lmbda)); the other options are :class:`~l2reg.options.TrainOptions`'.
    """
    import numpy as np

    from l2reg.core import engine
    from l2reg.options import TrainOptions

    lmbda = np.asarray(lmbda, np.float64)
    K = len(lmbda)
    col = lambda a: None if a is None else np.broadcast_to(np.asarray(a, np.float64), (K,)).copy()  # noqa: E731
    first = lambda a: None if a is None else tuple(np.ravel(a)[:1])  # noqa: E731
    checked = dict(lmbda=(0.0,) if options.get("optimizer") == "adamw" else tuple(lmbda))  # adamw: wd is the decay
    opts = TrainOptions(**checked, momentum=first(momentum), weight_decay=first(weight_decay), **options).checked()
    members = engine.Members(lmbda=lmbda, eta=col(eta), momentum=col(momentum) if opts.momentum else None,
                             weight_decay=col(weight_decay) if opts.weight_decay else None)
    return engine.fit_stack(spec, X, Y, opts, groups=groups, group_seeds=group_seeds, members=members,
                            eval_sets=eval_sets, monitor=monitor, on_epoch=on_epoch)
