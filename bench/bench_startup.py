"""Start-up of the command line (issue 15): ``l2reg train --dataset digits --epochs 1 -q``, first and second run.

Each round makes a fresh, empty ``L2REG_CACHE`` folder (a temporary one:
JAX's compilation cache starts empty), runs the
command once in a child process (the *first* run: everything is compiled and
written to the cache), then ``--second-runs`` more times with the same folder
(the *second* run: the compiled programs are loaded from the cache). Every
run is timed on the wall clock from the start of the process to its exit, in
a temporary working directory (its ``runs/`` folder goes there), with
``L2REG_COMPILE_CACHE``, ``L2REG_ENGINE`` and ``L2REG_ONE_CORE`` unset.
For scale it also times the floor every run pays: ``l2reg --help`` and a
bare ``python -c "import jax; jax.numpy.zeros(1)"``.

Targets (issue 15): second run ≤ 3 s, first run ≤ 7 s (medians over the rounds).

``--main-job`` times the README's main job instead (issue 24),
``l2reg sweep --train-size 300 --epochs 60 --init large --select 1se``: the
same rounds (a first run with an empty cache, then second runs), each with the
seconds of training and compiling that it prints, and what the rest costs
(start-up, data, the report). Target: second run ≤ 10 s (goal: ≤ 2 s more
than its training + compiling). It times whatever ``l2reg`` the child imports:
run it once as is and once with ``PYTHONPATH=other/src`` to compare two
versions of the code, one after the other on the same machine.

    python bench/bench_startup.py [--rounds 5] [--json out.json]
    python bench/bench_startup.py --main-job --rounds 3
    python bench/bench_startup.py --quick      # smoke run: one round
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from _common import clean_env, header, l2reg_command, load, load1, machine, median, timed_run, verdict

COMMAND = ["train", "--dataset", "digits", "--epochs", "1", "-q"]
FIRST_TARGET, SECOND_TARGET = 7.0, 3.0
MAIN_JOB = ["sweep", "--train-size", "300", "--epochs", "60", "--init", "large", "--select", "1se"]
MAIN_TARGET, MAIN_GOAL_OVER = 10.0, 2.0  # seconds; the goal: at most this much more than training + compiling
TRAINED = re.compile(r"in ([0-9.]+) s \(\+([0-9.]+) s compiling\)")


def timed_main_job(cmd: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """Wall seconds of the main job and the seconds of training + compiling it prints."""
    t = time.perf_counter()
    done = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    found = TRAINED.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, float(found[1]) + float(found[2])
JAX_FLOOR = [sys.executable, "-c", "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()"]


def one_round(r: int, second_runs: int) -> dict:
    """A fresh cache folder: the first run, then ``second_runs`` runs with the same folder; also the floors."""
    out = {"first": [], "second": [], "help": [], "jax": []}
    with tempfile.TemporaryDirectory(prefix="l2reg-cache-") as cache, \
            tempfile.TemporaryDirectory(prefix="l2reg-startup-") as cwd:
        env = clean_env(L2REG_CACHE=cache)
        cmd = l2reg_command() + COMMAND
        for kind in ["first"] + ["second"] * second_runs:
            out[kind].append((timed_run(cmd, env=env, cwd=cwd), load1()))
            print(f"  round {r + 1}: {kind} run  {out[kind][-1][0]:6.2f} s  ({load()})", flush=True)
        out["help"].append((timed_run(l2reg_command() + ["--help"], env=env, cwd=cwd), load1()))
        out["jax"].append((timed_run(JAX_FLOOR, env=env, cwd=cwd), load1()))
        print(f"  round {r + 1}: l2reg --help {out['help'][-1][0]:6.2f} s, bare JAX start "
              f"{out['jax'][-1][0]:6.2f} s  ({load()})", flush=True)
    return out


def main_job_round(r: int, second_runs: int) -> dict:
    """The main job with a fresh cache folder, then ``second_runs`` more with it; each (wall, work, load)."""
    out = {"first": [], "second": [], "jax": []}
    with tempfile.TemporaryDirectory(prefix="l2reg-cache-") as cache, \
            tempfile.TemporaryDirectory(prefix="l2reg-mainjob-") as cwd:
        env = clean_env(L2REG_CACHE=cache)
        for kind in ["first"] + ["second"] * second_runs:
            wall, work = timed_main_job(l2reg_command() + MAIN_JOB, env, cwd)
            out[kind].append((wall, work, load1()))
            print(f"  round {r + 1}: {kind} run {wall:6.2f} s, of which it printed {work:.2f} s training + "
                  f"compiling ({load()})", flush=True)
        out["jax"].append((timed_run(JAX_FLOOR, env=env, cwd=cwd), 0.0, load1()))
        print(f"  round {r + 1}: bare JAX start {out['jax'][-1][0]:6.2f} s  ({load()})", flush=True)
    return out


def main_job(args) -> None:
    """``--main-job``: the table and the verdicts of the README's main job."""
    from importlib.util import find_spec

    code = find_spec("l2reg").origin  # the code the children run (PYTHONPATH decides), not imported here
    print(header(f"the main job `l2reg {' '.join(MAIN_JOB)}` ({code}), {args.rounds} round(s)"),
          flush=True)
    runs = {"first": [], "second": [], "jax": []}
    for r in range(args.rounds):
        for kind, got in main_job_round(r, args.second_runs).items():
            runs[kind] += got
    labels = {"first": "main job, first run (empty cache)", "second": "main job, second run (same cache)",
              "jax": "bare JAX start"}
    med = {kind: median([w for w, _, _ in got]) for kind, got in runs.items()}
    work = {kind: median([x for _, x, _ in got]) for kind, got in runs.items()}
    print("\n| run | median s | min–max | training + compiling (median) | the rest | runs | mean load |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, got in runs.items():
        ws = [w for w, _, _ in got]
        printed = f"{work[kind]:.2f}" if kind != "jax" else "–"
        rest = f"{med[kind] - work[kind]:.2f}" if kind != "jax" else "–"
        print(f"| {labels[kind]} | {med[kind]:.2f} | {min(ws):.2f}–{max(ws):.2f} | {printed} | {rest} | {len(ws)} "
              f"| {sum(x for _, _, x in got) / len(got):.1f} |")
    print("\nTarget (issue 24):")
    print(verdict("main job, second run, median", med["second"], MAIN_TARGET, unit=" s", lower_is_better=True,
                  goal=work["second"] + MAIN_GOAL_OVER))
    print(f"({load()} at the end)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "command": MAIN_JOB,
                       "code": code, "runs": runs, "medians": med, "work": work,
                       "load_average_end": os.getloadavg()}, f, indent=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Every timing is printed with the load average; run on a quiet machine.")
    ap.add_argument("--rounds", type=int, default=5, help="fresh cache folders, each with a first run (≥ 3)")
    ap.add_argument("--second-runs", type=int, default=2, help="runs with the same folder after each first run")
    ap.add_argument("--quick", action="store_true", help="smoke run: one round, one second run")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--main-job", action="store_true", help="time the README's main job (issue 24) instead")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.second_runs = 1, 1
    if args.main_job:
        return main_job(args)
    print(header(f"`l2reg {' '.join(COMMAND)}` ({' '.join(l2reg_command())}), {args.rounds} round(s)"), flush=True)
    runs = {"first": [], "second": [], "help": [], "jax": []}
    for r in range(args.rounds):
        for kind, got in one_round(r, args.second_runs).items():
            runs[kind] += got
    med = {kind: median([t for t, _ in got]) for kind, got in runs.items()}
    labels = {"first": "first run (empty cache)", "second": "second run (same cache)",
              "help": "l2reg --help", "jax": "bare JAX start"}
    print("\n| run | median s | min–max | runs | mean load |")
    print("|---|---:|---:|---:|---:|")
    for kind, got in runs.items():
        ts = [t for t, _ in got]
        print(f"| {labels[kind]} | {med[kind]:.2f} | {min(ts):.2f}–{max(ts):.2f} | {len(ts)} "
              f"| {sum(x for _, x in got) / len(got):.1f} |")
    lines = [verdict("second run, median", med["second"], SECOND_TARGET, unit=" s", lower_is_better=True),
             verdict("first run, median", med["first"], FIRST_TARGET, unit=" s", lower_is_better=True)]
    print("\nTargets (issue 15):")
    for line in lines:
        print(line)
    if args.rounds < 3:
        print(f"NOTE: {args.rounds} round(s); the issue asks for medians of a few (run with --rounds 5).")
    print(f"({load()} at the end)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "command": COMMAND,
                       "runs": runs, "medians": med, "verdicts": lines, "load_average_end": os.getloadavg()},
                      f, indent=2)


if __name__ == "__main__":
    main()
