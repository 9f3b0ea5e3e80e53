"""Screenshots of the train, sweep and explain reports at 1400 px wide, and the docs figures cut from them.

    python3 docs/screenshots.py               # the README's digits runs; about 2 minutes on 2 cores
    python3 docs/screenshots.py --out /tmp/s  # somewhere else than docs/

Needs what the browser tests need: Debian's Chromium (``/usr/bin/chromium``,
or ``$L2REG_CHROMIUM``) and Playwright's Python package. The runs are the
README's and docs/explain.md's examples: ``l2reg sweep --train-size 300
--epochs 60 --init large --select 1se``, ``l2reg explain --lmbda 0.5`` and
``l2reg train --lmbda 0,0.1,1,5``. Each report is written to
``runs/screenshots/KIND.html`` (``--reports``) and opened in a 1400 × 900
window; then

* ``OUT/screenshots/report-KIND.png``: the whole page;
* ``OUT/explorer-sweep.png``: the λ explorer of the sweep, at the chosen λ;
* the figures the README and docs/ show, cut from the pages:
  ``sweep-digits-path.png`` (``#sweep-path``), ``sweep-learning-curves.png``,
  ``explain-trajectories.png``, ``explain-terms.png`` and ``explain-cumulative.png``.

PNGs are written with a 256-colour palette (plots need no more), which keeps
a full page under about half a megabyte.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import time
from pathlib import Path

import l2reg
from l2reg.present import report

log = logging.getLogger("screenshots")

CHROMIUM = os.environ.get("L2REG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1400, 900
# (report, element, file): the figures cut from the pages for README.md and docs/.
CUTS = [("sweep", "#sweep-path img", "sweep-digits-path.png"),
        ("sweep", "#sweep-learning-curves img", "sweep-learning-curves.png"),
        ("sweep", "#l2reg-explorer", "explorer-sweep.png"),
        ("explain", "#explain-trajectories img", "explain-trajectories.png"),
        ("explain", "#explain-terms img", "explain-terms.png"),
        ("explain", "#explain-cumulative img", "explain-cumulative.png")]


def run_reports(folder: Path) -> dict[str, Path]:
    """Train the three example runs and write their reports; returns kind -> report.html."""
    folder.mkdir(parents=True, exist_ok=True)
    runs = {
        "sweep": lambda: l2reg.sweep("digits", train_size=300, epochs=60, init="large", select="1se"),
        "explain": lambda: l2reg.explain("digits", lmbda=0.5, epochs=30),
        "train": lambda: l2reg.train("digits", lmbda=[0.0, 0.1, 1.0, 5.0]),
    }
    pages = {"sweep": report.sweep_report_html, "explain": report.explain_report_html,
             "train": report.train_report_html}
    out = {}
    for kind, run in runs.items():
        t = time.perf_counter()
        path = folder / f"{kind}.html"
        path.write_text(pages[kind](run()), encoding="utf-8")
        log.info("%s: %.0f s, report %.0f kB (load %s)", kind, time.perf_counter() - t, path.stat().st_size / 1024,
                 " ".join(f"{x:.1f}" for x in os.getloadavg()))
        out[kind] = path
    return out


def save_png(data: bytes, path: Path) -> None:
    """A screenshot as a 256-colour PNG."""
    from PIL import Image

    Image.open(io.BytesIO(data)).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    log.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1024)


def shoot(reports: dict[str, Path], out: Path) -> None:
    """Full-page screenshots of each report, and the cuts of :data:`CUTS`."""
    from playwright.sync_api import sync_playwright

    (out / "screenshots").mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        for kind, path in reports.items():
            page.goto(path.resolve().as_uri(), wait_until="load")
            save_png(page.screenshot(full_page=True), out / "screenshots" / f"report-{kind}.png")
            for k, selector, name in CUTS:
                if k == kind:
                    save_png(page.locator(selector).screenshot(), out / name)
        browser.close()
    if errors:
        raise SystemExit(f"the reports logged errors: {errors}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", type=Path, default=here, help="folder for the images (default: docs/)")
    parser.add_argument("--reports", type=Path, default=here.parent / "runs" / "screenshots",
                        help="folder for the reports (default: runs/screenshots/)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shoot(run_reports(args.reports), args.out)


if __name__ == "__main__":
    main()
