"""Benchmark of sweeps on Ray (issue 12): in process against Ray on this machine, and the model for N machines.

Two jobs, each run as a user runs it (``l2reg sweep`` in a fresh process):

* ``digits``: the README's main job, ``l2reg sweep --train-size 300
  --epochs 60 --init large --select 1se`` (13 λ × 5 folds = 65 CV models,
  then the refit of the 13-λ path);
* ``mnist``: bench_sweep's task, 16 λ × 5 folds = 80 CV models on MNIST's
  first 1,000 images (784-30-10, m = 10, η = 0.5), at ``--epochs`` (30 by
  default, not 100, to keep the run short), then the refit of the 16-λ path.

Routes, interleaved within each repeat so that they share the machine's load:

* ``in process``: the default backend, the whole grid as one stack;
* ``ray, local``: ``--backend ray``, the command starts Ray on this machine
  (and it stops with the process): what one machine pays to use Ray;
* ``ray, cluster``: ``--backend ray --address 127.0.0.1:PORT`` against a
  cluster this script starts once with ``ray start --head`` (every Ray
  server on 127.0.0.1); each command is a new Ray job with new workers, and
  the workers' compilation cache on disk is warm after the first run;
* ``ray, cluster, --block-size 4`` (mnist): 20 CV blocks of 4 λ instead of 5
  of 16, the layout for more machines than folds.

Every command (and the cluster's workers) uses l2reg's compilation cache in a
folder of this run (``L2REG_COMPILE_CACHE``): the first repeat compiles, the
later ones load; the walls of every repeat are printed.

Per-block times, the time to connect (or start Ray) and the time to put the
data come from each run's ``blocks/log.json``. The script then writes down the
model for N machines of c CPUs: T(N) ≈ T0 + ⌈B/(N·c)⌉·t_block + t_refit
(+ the data, sent once per node), with T0 the time outside the blocks.

    python bench/bench_ray.py --data-dir ../shared/data [--repeats 3] [--epochs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench_sweep import machine  # bench/ is on sys.path when run as a script

LOCAL_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
#: Route -> the command's extra arguments.
ROUTES = {
    "in process": [],
    "ray, local": ["--backend", "ray"],
    "ray, cluster": ["--backend", "ray", "--address", "ADDRESS"],
    "ray, cluster, --block-size 4": ["--backend", "ray", "--address", "ADDRESS", "--block-size", "4"],
}


def jobs(args) -> dict:
    """Each job's options, as :func:`l2reg.sweep` takes them (and the command line, by :func:`argv_of`)."""
    from l2reg.fronts.cv import default_grid

    mnist = {"dataset": "mnist", "data_dir": args.data_dir, "train_size": 1000, "sizes": [784, 30, 10],
             "batch_size": 10, "eta": 0.5, "epochs": args.epochs, "folds": 5, "seed": 0,
             "lmbda": default_grid(1000, 15)}
    return {"digits": {"train_size": 300, "epochs": 60, "init": "large", "select": "1se"}, "mnist": mnist}


def argv_of(opts: dict) -> list:
    argv = []
    for key, value in opts.items():
        if value is None:
            continue
        flag = "--lmbdas" if key == "lmbda" else "--" + key.replace("_", "-")
        argv += [flag, ",".join(map(repr, value)) if isinstance(value, list) else str(value)]
    return argv


def run_sweep(argv: list, env: dict) -> dict:
    out = tempfile.mkdtemp(prefix="bench-ray-")
    cmd = [sys.executable, "-m", "l2reg.cli", "sweep", *argv, "--out", out, "--overwrite", "--keep-checkpoints", "-q"]
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    with open(os.path.join(out, "sweep.json")) as f:
        meta = json.load(f)
    row = {"wall_seconds": wall, "chosen_lmbda": meta["chosen_lmbda"], "load": os.getloadavg()[0],
           "train_seconds": meta["train_seconds"], "compile_seconds": meta["compile_seconds"]}
    log_path = os.path.join(out, "blocks", "log.json")
    if os.path.exists(log_path):
        with open(log_path) as f:
            runs = {r["stage"]: r for r in json.load(f)["runs"]}
        cv, refit = runs["cv"], runs["refit"]
        row.update(blocks=len(cv["ran"]), block_seconds=[b["seconds"] for b in cv["ran"]],
                   refit_blocks=len(refit["ran"]), refit_block_seconds=[b["seconds"] for b in refit["ran"]],
                   refit_seconds=max(b["seconds"] for b in refit["ran"]), connect_seconds=cv["connect_seconds"],
                   put_seconds=cv.get("put_seconds", 0.0), cv_wall=cv["wall_seconds"], refit_wall=refit["wall_seconds"],
                   outside=wall - cv["wall_seconds"] - refit["wall_seconds"])
    shutil.rmtree(out, ignore_errors=True)
    return row


def task_bytes(opts: dict) -> int:
    """The size of what goes to the cluster once (the pickled CVTask: X, y, folds, pairs, test set)."""
    from l2reg.options import SweepOptions
    from l2reg.fronts.sweeping import plan_sweep

    return len(pickle.dumps(plan_sweep(SweepOptions.from_flat(opts).checked()).task, protocol=5))


def start_cluster(cpus: int, env: dict) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="l2r-ray-")
    proc = subprocess.Popen(["ray", "start", "--head", "--num-cpus", str(cpus), "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
                             "--temp-dir", temp], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    proc.wait(timeout=120)
    return proc, f"127.0.0.1:{port}", temp


def stop_cluster(proc: subprocess.Popen, temp: str) -> None:
    """Stop what ``ray start`` started (its process group); ``ray stop`` would stop every Ray on the machine."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        time.sleep(wait)
    shutil.rmtree(temp, ignore_errors=True)


def median(rows: list, key: str) -> float:
    return statistics.median(r[key] for r in rows)


def block_times(rows: list, cpus: int) -> tuple[float, float]:
    """Medians over the runs of the first wave's slowest block (new workers: imports, compiled programs loaded)
    and of the later blocks (in order of arrival)."""
    first = statistics.median(max(r["block_seconds"][:cpus]) for r in rows)
    later = [statistics.median(r["block_seconds"][cpus:]) for r in rows if len(r["block_seconds"]) > cpus]
    return first, statistics.median(later) if later else first


def model(rows: list, cpus: int, n: int) -> float:
    """T(N) ≈ T0 + t_first + (⌈B/(N·c)⌉ − 1)·t_block + ⌈R/(N·c)⌉·t_refit, from one route's measured times."""
    t0, (t_first, t_b) = median(rows, "outside"), block_times(rows, cpus)
    waves = math.ceil(rows[0]["blocks"] / (n * cpus))
    refit_waves = math.ceil(rows[0]["refit_blocks"] / (n * cpus))
    return t0 + t_first + (waves - 1) * t_b + refit_waves * median(rows, "refit_seconds")


def report(name: str, routes: dict, size: int, cpus: int) -> None:
    base = median(routes["in process"], "wall_seconds")
    print(f"\n### {name} (task sent to the cluster: {size / 1e6:.1f} MB)\n")
    print("| route | median wall s | vs in process | blocks (CV + refit) | first wave s | later block s | "
          "refit block s | connect s | put s | outside the blocks s | chosen λ | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for route, rows in routes.items():
        wall = median(rows, "wall_seconds")
        chosen = {r["chosen_lmbda"] for r in rows}
        load = f"{min(r['load'] for r in rows):.1f}–{max(r['load'] for r in rows):.1f}"
        head = f"| {route} | {wall:.1f} | {wall / base:.2f}× |"
        if "blocks" in rows[0]:
            first, later = block_times(rows, cpus)
            print(f"{head} {rows[0]['blocks']} + {rows[0]['refit_blocks']} | {first:.2f} | {later:.2f} | "
                  f"{median(rows, 'refit_seconds'):.2f} | {median(rows, 'connect_seconds'):.2f} | "
                  f"{median(rows, 'put_seconds'):.3f} | {median(rows, 'outside'):.1f} | {sorted(chosen)} | {load} |")
        else:
            print(f"{head} 1 | – | – | – | – | – | – | {sorted(chosen)} | {load} |")
    for route, rows in routes.items():
        print(f"{route}: walls {[round(r['wall_seconds'], 1) for r in rows]}" + (
            "" if "blocks" in rows[0] else f"; training {median(rows, 'train_seconds'):.1f} s, compiling "
            f"{median(rows, 'compile_seconds'):.1f} s (medians, sweep.json)"))
    for route, rows in routes.items():
        if "cluster" in route:
            first, later = block_times(rows, cpus)
            print(f"model, {route}: T(N) ≈ {median(rows, 'outside'):.1f} + {first:.2f} + (⌈{rows[0]['blocks']}/(N·{cpus})⌉"
                  f" − 1)·{later:.2f} + ⌈{rows[0]['refit_blocks']}/(N·{cpus})⌉·{median(rows, 'refit_seconds'):.2f} → "
                  + ", ".join(f"N={n}: {model(rows, cpus, n):.1f} s" for n in (1, 2, 4, 8, 16)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else $L2REG_DATA)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the MNIST job (the README's job: 60)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default="digits,mnist")
    ap.add_argument("--json", default=None)
    ap.add_argument("--from-json", default=None, help="print the tables of a saved run (its --json) and stop")
    args = ap.parse_args()
    cpus = os.cpu_count()
    if args.from_json:
        with open(args.from_json) as f:
            for job, saved in json.load(f).items():
                report(job, saved["routes"], saved["task_bytes"], cpus)
        return
    env = dict(os.environ, **LOCAL_ONLY, L2REG_COMPILE_CACHE=tempfile.mkdtemp(prefix="bench-ray-cache-"))
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}; load average {os.getloadavg()}")
    proc, address, temp = start_cluster(cpus, env)
    results = {}
    try:
        for job, opts in jobs(args).items():
            if job not in args.jobs.split(","):
                continue
            argv = argv_of(opts)
            routes = {name: [] for name in ROUTES if name != "ray, cluster, --block-size 4" or job == "mnist"}
            for _ in range(args.repeats):
                for route, rows in routes.items():
                    extra = [address if a == "ADDRESS" else a for a in ROUTES[route]]
                    row = run_sweep(argv + extra, env)
                    rows.append(row)
                    print(f"  {job} / {route}: {row['wall_seconds']:.1f} s (load {row['load']:.1f})", flush=True)
            size = task_bytes(opts)
            report(job, routes, size, cpus)
            results[job] = {"routes": routes, "task_bytes": size}
    finally:
        stop_cluster(proc, temp)
        shutil.rmtree(env["L2REG_COMPILE_CACHE"], ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=float)


if __name__ == "__main__":
    main()
