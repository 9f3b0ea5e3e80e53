"""Size of a sweep report with 13 λ on an MNIST-sized network (784-30-10), and how fast its explorer redraws.

    python3 bench/report_size.py                       # MNIST from /work/shared/data (or $L2REG_DATA)
    python3 bench/report_size.py --train-size 1000 --epochs 30 --out runs/mnist-report.html

Trains ``l2reg.sweep`` on MNIST with the default grid (λ = 0 plus 12 values,
13 in all), 3 folds, then writes its report and prints: the page's size, and
of that the explorer's JSON (every λ's curves, Σw² and histogram counts), its
JavaScript and the figures (base64 PNG). With Chromium and Playwright at
hand it also opens the page and times, in the page, a full redraw of the
explorer for each of the 13 positions of the slider (median over 3 passes).
Prints the load average beside every timing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import l2reg
from l2reg.present import explorer, report

CHROMIUM = os.environ.get("L2REG_CHROMIUM", "/usr/bin/chromium")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def sizes(page: str) -> dict:
    """Bytes of the page, its explorer JSON and script, and its inline images."""
    data = re.search(r'<script type="application/json" id="l2reg-explorer-data">(.*?)</script>', page, re.S)
    script = re.search(r"<script>\n(.*?)</script>", page, re.S)
    images = sum(len(m) for m in re.findall(r'src="(data:image/png;base64,[^"]*)"', page))
    return {"page": len(page.encode()), "explorer JSON": len(data.group(1).encode()),
            "explorer JS": len(script.group(1).encode()), "figures (base64 PNG)": images}


def redraw_ms(path: Path, n: int) -> float | None:
    """Median time (ms) of one slider move (readout and every chart), measured in Chromium; None without it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    exe = shutil.which(CHROMIUM) or CHROMIUM
    if not Path(exe).is_file():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(path.resolve().as_uri())
        times = page.evaluate(
            """n => { const s = document.getElementById('l2reg-lmbda'), out = [];
                      for (let pass = 0; pass < 3; pass++) {
                        const t = performance.now();
                        for (let i = 0; i < n; i++) { s.value = String(i); s.dispatchEvent(new Event('input')); }
                        out.push((performance.now() - t) / n); }
                      return out; }""", n)
        browser.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("L2REG_DATA", "/work/shared/data"))
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", type=Path, help="also write the report there (a file name)")
    args = parser.parse_args()
    t = time.perf_counter()
    result = l2reg.sweep("mnist", data_dir=args.data_dir, train_size=args.train_size, epochs=args.epochs, folds=3,
                         sizes=[784, 30, 10])
    print(f"sweep: {len(result.rows)} λ × 3 folds, n = {result.config['n']}, {args.epochs} epochs: "
          f"{time.perf_counter() - t:.0f} s (load {load()})")
    t = time.perf_counter()
    page = report.sweep_report_html(result)
    print(f"report: {time.perf_counter() - t:.1f} s to draw (load {load()})")
    for name, size in sizes(page).items():
        print(f"  {name:22s} {size / 1024:8.1f} kB")
    if args.out is not None:
        args.out.write_text(page, encoding="utf-8")
    data = explorer.explorer_data(page)
    print(f"  λ in the explorer: {len(data['models'])}, histogram bins: {len(data['hist']['edges']) - 1}, "
          f"weights per model: {sum(data['models'][0]['hist'])}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        path.write_text(page, encoding="utf-8")
        ms = redraw_ms(path, len(data["models"]))
    print("explorer redraw: " + ("Chromium or Playwright missing" if ms is None else
                                 f"{ms:.1f} ms per slider move (median of 3 passes over every λ; load {load()})"))


if __name__ == "__main__":
    main()
