"""The train, sweep and explain reports: their λ explorer data, their figures, and the pages in a real browser.

The browser tests drive Debian's Chromium (``/usr/bin/chromium``, or
``$L2REG_CHROMIUM``) through Playwright's Python package and skip, saying
why, when either is missing. Each page must load with no console error and
no request but its own ``file://`` address (its images are ``data:``); moving
the slider must show the numbers of the selected λ as the run's JSON file
holds them (sweep.json, metrics.json, explain.json), and the histogram bars
must be NumPy's counts of that λ's weights.
"""

import dataclasses
import json
import math
import os
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax_cache import compilation_cache  # noqa: F401  (a fixture)
from once import once

import l2reg
from l2reg.present import explorer, plots_sweep, report
from l2reg.core import network
from l2reg.errors import ConfigError
from l2reg.present.save import save  # noqa: E402

pytestmark = pytest.mark.usefixtures("compilation_cache")

# ---------------------------------------------------------------- the runs: every call of the API is here

TINY = {"epochs": 3, "train_size": 120}


def regression_data(folder: Path) -> str:
    """A small linear regression problem as an .npz (float y, with a test split)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=90)).astype(np.float32)
    path = folder / "reg.npz"
    np.savez(path, X=X[:60], y=y[:60], X_test=X[60:], y_test=y[60:])
    return str(path)


def make_run(kind: str, folder: Path):
    """The tiny run behind each report the tests open."""
    reg = {"cost": "quadratic", "eta": 0.05, "epochs": 3}
    if kind == "train":
        return l2reg.train("digits", lmbda=[0.0, 0.3, 3.0], **TINY)
    if kind == "train-regression":
        return l2reg.train(regression_data(folder), lmbda=[0.0, 1.0], eval="test", **reg)
    if kind == "sweep":
        return l2reg.sweep("digits", lmbda=[0.0, 0.3, 3.0, 30.0], folds=3, **TINY)
    if kind == "sweep-regression":
        return l2reg.sweep(regression_data(folder), lmbda=[0.0, 1.0, 100.0], folds=3, **reg)
    if kind == "sweep-no-zero":  # no λ = 0 in the grid, and no per-epoch records of the fold models
        return l2reg.sweep("digits", lmbda=[0.1, 1.0], folds=2, epochs=2, train_size=120, monitor=())
    if kind == "explain":
        return l2reg.explain("digits", lmbda=1.0, epochs=2, train_size=120)
    if kind == "explain-regression":
        return l2reg.explain(regression_data(folder), lmbda=1.0, eval="test", **{**reg, "epochs": 2})
    raise ValueError(kind)


# ---------------------------------------------------------------- stand-ins for result fields still being built


def refit_terms(result) -> dict:
    """``SweepResult.refit_terms`` from the refit weights: mean |d|, mean |g| (full batch) and the share g·w > 0."""
    from l2reg.data import load_dataset

    c = result.config
    data = load_dataset(c["dataset"], c.get("data_dir"), train_size=c.get("train_size"), eval="test")
    spec = network.NetworkSpec(tuple(c["sizes"]), c["activation"], c["cost"], result.regression)
    params = network.stack([[{k: jnp.asarray(v) for k, v in layer.items()} for layer in p]
                            for p in result.refit_params])
    X, y = jnp.asarray(data.X_train, jnp.float32), jnp.asarray(data.y_train)

    def total_c0(p):  # Σ over the R models of each one's mean C0: the gradient of model r is its own
        t = network.targets(spec, y, spec.sizes[-1])[:, None]
        return jnp.sum(jnp.mean(network.cost_per_example(spec, network.logits(spec, p, X), t), axis=0))

    grads = jax.grad(total_c0)(params)
    eta, n, lm = result.chosen_eta, c["n"], np.asarray(result.refit_lmbdas)
    w = np.concatenate([np.asarray(layer["w"]).transpose(1, 0, 2).reshape(len(lm), -1) for layer in params], 1)
    g = -eta * np.concatenate([np.asarray(layer["w"]).transpose(1, 0, 2).reshape(len(lm), -1) for layer in grads], 1)
    d = -(eta * lm / n)[:, None] * w
    return {"mean_abs_decay": np.abs(d).mean(1), "mean_abs_data": np.abs(g).mean(1), "frac_away": (g * w > 0).mean(1)}


def with_stand_ins(result):
    """The result, with the planned fields computed here when the library does not fill them yet."""
    if hasattr(result, "refit_params") and getattr(result, "refit_terms", None) is None:
        result.refit_terms = refit_terms(result)
    return result


def zero_chosen(result):
    """A copy of a sweep in which cross-validation chose λ = 0 (its smallest λ)."""
    b = result.baseline_index
    rows = [dict(r, chosen=i == b) for i, r in enumerate(result.rows)]
    return dataclasses.replace(result, rows=rows, chosen_index=b)


def partial_refit(result):
    """A copy of a sweep whose largest λ was not refit (as before the whole path was refit)."""
    keep = [r for r, lm in enumerate(result.refit_lmbdas) if lm != max(result.refit_lmbdas)]
    terms = None if result.refit_terms is None else {k: np.asarray(v)[keep] for k, v in result.refit_terms.items()}
    rows = [dict(r, refit=r["lmbda"] != max(result.refit_lmbdas)) for r in result.rows]
    return dataclasses.replace(
        result, rows=rows, refit_lmbdas=[result.refit_lmbdas[r] for r in keep],
        refit_history={k: v[:, keep] for k, v in result.refit_history.items()},
        refit_params=[result.refit_params[r] for r in keep], refit_terms=terms)


# ---------------------------------------------------------------- the reports, written once

KINDS = ("train", "train-regression", "sweep", "sweep-regression", "sweep-no-zero", "sweep-zero-chosen",
         "sweep-partial-refit", "explain", "explain-regression")
DERIVED = {"sweep-zero-chosen": zero_chosen, "sweep-partial-refit": partial_refit}  # from the "sweep" run


def runs_and_pages(folder: Path) -> tuple[dict, dict]:
    """Every kind's result, and its pages: kind -> (report.html, the run's JSON file as the library writes it:
    metrics, sweep or explain.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        import importlib

        mp.setattr(importlib.import_module("l2reg.fronts.sweeping"), "NEIGHBOURS", 1000, raising=False)  # refit every λ
        runs = {kind: with_stand_ins(make_run(kind, folder)) for kind in KINDS if kind not in DERIVED}
    runs.update({kind: derive(runs["sweep"]) for kind, derive in DERIVED.items()})
    pages = {}
    for kind, result in runs.items():
        (folder / kind).mkdir()
        save(result, folder / kind)
        if kind.startswith("train"):
            (folder / kind / "report.html").write_text(report.train_report_html(result, figures=True), encoding="utf-8")
            name = "metrics.json"
        elif kind.startswith("sweep"):
            name = "sweep.json"  # save() wrote report.html too
        else:
            (folder / kind / "report.html").write_text(report.explain_report_html(result), encoding="utf-8")
            name = "explain.json"
        pages[kind] = (folder / kind / "report.html", json.loads((folder / kind / name).read_text()))
    return runs, pages


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The runs and their pages, made once for the session whichever xdist worker asks first (tests/once.py)."""
    return once(tmp_path_factory, "report-pages", runs_and_pages)


@pytest.fixture(scope="module")
def runs(built):
    return built[0]


@pytest.fixture(scope="module")
def pages(built):
    """kind -> (report.html, the run's JSON file as the library writes it)."""
    return built[1]


# ---------------------------------------------------------------- what the page must show for each λ


def expected(kind: str, result, doc: dict, j: int) -> dict:
    """Readout key -> (value from the run's JSON, format) for slider position j."""
    if kind.startswith("sweep"):
        at = result.rows_at_chosen_eta()
        row = doc["rows"][at[j]]
        key, fmt = ("cost", "g4") if result.regression else ("accuracy", "pct")
        want = {"lmbda": (row["lmbda"], "lmbda"), "cv": (row[f"cv_{key}_mean"], fmt), "se": (row[f"cv_{key}_se"], fmt),
                "train": (row[f"training_{key}"], fmt), "test": (row[f"test_{key}"], fmt), "gap": (row["gap"], fmt),
                "sq": (row["weight_sq_norm"], "g4")}
        if row["refit"]:
            r = result.refit_lmbdas.index(row["lmbda"])
            t = result.refit_terms
            want.update(decay=(t["mean_abs_decay"][r], "g4"), data=(t["mean_abs_data"][r], "g4"),
                        away=(t["frac_away"][r], "pct1"))
        return want
    c = result.config
    if kind.startswith("train"):
        run = doc["runs"][j]
        sq = run["weight_sq_norm"][-1]
        if result.config["regression"]:  # the page shows C0: the recorded cost less (λ/2n)·Σw²
            pen = 0.5 * run["lmbda"] / c["n"] * sq
            return {"lmbda": (run["lmbda"], "lmbda"), "train": (run["training_cost"][-1] - pen, "g4"),
                    "test": (run["evaluation_cost"][-1] - pen, "g4"), "sq": (sq, "g4")}
        return {"lmbda": (run["lmbda"], "lmbda"), "train": (run["training_accuracy"][-1], "pct"),
                "test": (run["evaluation_accuracy"][-1], "pct"), "sq": (sq, "g4")}
    m = doc["models"][j]
    want = {"lmbda": (m["lmbda"], "lmbda"), "sq": (m["weight_sq_norm"][-1], "g4"),
            "ratio": (m["weight_sq_ratio"][-1], "g4"), "decay": (m["mean_abs_decay"][-1], "g4"),
            "data": (m["mean_abs_data"][-1], "g4"), "away": (m["frac_away"][-1], "pct1"),
            "grew": (m["frac_grow"][-1], "pct1")}
    if not c["regression"]:
        want.update(train=(m["training_accuracy"][-1], "pct"), test=(m["evaluation_accuracy"][-1], "pct"))
    return want


def agrees(text: str, value, fmt: str) -> bool:
    """The displayed text is ``value`` at the precision of its format."""
    if value is None or not math.isfinite(value):
        return text == "–"
    shown = float(text.rstrip("%"))
    if fmt == "pct":
        return abs(shown - 100 * value) <= 0.005 + 1e-9
    if fmt == "pct1":
        return abs(shown - 100 * value) <= 0.05 + 1e-9
    rel = 5e-3 if fmt == "lmbda" else 5e-4
    return abs(shown - value) <= rel * abs(value) + 1e-300


def page_weights(kind: str, result, j: int) -> np.ndarray:
    """Every weight of the model behind slider position j (refit model, fold 1's, or all seeds)."""
    if kind.startswith("sweep"):
        i = result.rows_at_chosen_eta()[j]
        lm = result.rows[i]["lmbda"]
        if lm in result.refit_lmbdas:
            return explorer.weights_of(result.refit_params[result.refit_lmbdas.index(lm)])
        return np.concatenate([np.ravel(layer["w"][:, i, :]) for layer in result.cv.params])
    if kind.startswith("train"):
        return explorer.weights_of(result.params[j])
    return np.concatenate([np.ravel(layer["w"][:, j, :]) for layer in result.final_params])


# ---------------------------------------------------------------- without a browser


@pytest.mark.parametrize("kind", KINDS)
def test_page_is_self_contained_and_embeds_one_entry_per_lmbda(kind, runs, pages):
    text = pages[kind][0].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "http" not in text.replace("http-equiv", "") and not re.search(r"ftp:|<link|@import|url\(", text)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', text))
    scripts = re.findall(r"<script([^>]*)>", text)
    assert scripts == [' type="application/json" id="l2reg-explorer-data"', ""]
    data = explorer.explorer_data(text)
    result = runs[kind]
    n = (len(result.rows_at_chosen_eta()) if kind.startswith("sweep") else
         len(result.runs) if kind.startswith("train") else len(result.lmbdas))
    assert len(data["models"]) == n and 0 <= data["start"] < n


def test_sweep_page_marks_the_choice_and_compares_it_with_zero_and_the_best(runs):
    r = runs["sweep"]
    data = explorer.sweep_data(r)
    at = r.rows_at_chosen_eta()
    assert data["start"] == at.index(r.chosen_index) and data["reference"] == 0
    assert data["path"]["marks"][0]["index"] == at.index(r.chosen_index)
    picks = plots_sweep.compare_picks(r, refit=True)
    assert picks[0]["label"].startswith("λ = 0") and len({p["row"] for p in picks}) == len(picks)
    assert r.chosen_index in {p["row"] for p in picks}


def test_when_lmbda_zero_is_chosen_the_figures_still_show_the_best_lmbda_above_zero(runs):
    r = runs["sweep-zero-chosen"]
    assert r.chosen_lmbda == 0.0 and "chose λ = 0 itself" in report.sweep_gap_sentence(r)
    picks = plots_sweep.compare_picks(r, refit=True)
    assert [p["lmbda"] > 0 for p in picks] == [False, True] and "chosen" in picks[0]["label"]
    fig = report.sweep_learning_curves_figure(r)
    assert any("best" in t.get_text() for t in fig.legends[0].get_texts())


@pytest.mark.parametrize("kind", ["sweep", "sweep-regression"])
def test_the_decay_data_split_is_the_full_batch_gradient_at_the_refit_weights(kind, runs):
    for name, value in refit_terms(runs[kind]).items():  # jax.grad of C0 here, against the library's numbers
        np.testing.assert_allclose(runs[kind].refit_terms[name], value, rtol=1e-4, atol=1e-9, err_msg=name)


def test_a_lmbda_without_refit_falls_back_to_its_fold_models(runs):
    r = runs["sweep-partial-refit"]
    data = explorer.sweep_data(r)
    last = data["models"][-1]
    assert "Not refit" in last["note"] and last["terms"] is None and last["train_label"].endswith("(fold models)")
    assert all(m["terms"] is not None for m in data["models"][:-1])
    assert sum(last["hist"]) == page_weights("sweep-partial-refit", r, len(data["models"]) - 1).size


def test_without_the_decay_data_split_its_chart_and_figure_are_left_out(runs):
    r = dataclasses.replace(runs["sweep"], refit_terms=None)
    data = explorer.sweep_data(r)
    assert "terms" not in data["charts"] and all(f["key"] not in ("decay", "data") for f in data["fields"])
    assert report.sweep_terms_figure(r) is None


def test_explain_without_cumulative_sums_leaves_that_figure_out(runs):
    r = runs["explain"]
    r = dataclasses.replace(r, cumulative=None) if hasattr(r, "cumulative") else r
    assert report.explain_cumulative_figure(r, 1) is None


def test_cumulative_sums_add_up_to_the_final_weights(runs, pages):
    r = runs["explain"]
    if getattr(r, "cumulative", None) is None:
        pytest.skip("ExplainResult.cumulative is not filled by this version of l2reg.explain")
    for layer, final in zip(r.cumulative, r.final_params):
        np.testing.assert_allclose(layer["w0"] + layer["decay"] + layer["data"], final["w"], atol=2e-5)
    assert 'id="explain-cumulative"' in pages["explain"][0].read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["train", "sweep-partial-refit", "explain"])
def test_figures_are_full_width_with_text_of_eleven_points_or_more(kind, runs):
    from l2reg.present.pages import figures_of

    for fig_id, _, _, draw in figures_of(runs[kind]):
        fig = draw()
        if fig is None:
            continue
        assert fig.get_figwidth() * fig.dpi == pytest.approx(1280), fig_id
        small = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
                 if t.get_text().strip() and t.get_visible() and t.get_fontsize() < 11]
        assert not small, (fig_id, small[:5])
        report.figure_png(fig)


@pytest.mark.parametrize("kind,fmt", [("train-regression", "png"), ("train-regression", "svg")])
def test_write_figures_writes_each_figure_alone(kind, fmt, runs, tmp_path):
    from l2reg.present.pages import figures_of

    paths = report.write_figures(runs[kind], tmp_path, fmt=fmt)
    assert [p.name for p in paths] == [f"{fig_id}.{fmt}" for fig_id, *_ in figures_of(runs[kind])]
    for p in paths:
        head = p.read_bytes()[:1000]
        assert head.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in head


def test_write_figures_refuses_an_unknown_format_or_result(runs, tmp_path):
    with pytest.raises(ConfigError, match="fmt must be one of png, svg; got 'jpg'"):
        report.write_figures(runs["train"], tmp_path, fmt="jpg")
    with pytest.raises(TypeError, match="result must be a TrainResult, SweepResult or ExplainResult; got dict."):
        report.write_figures({}, tmp_path)


def test_sweep_save_writes_the_report_with_its_figures_and_explorer(runs, pages):
    page = pages["sweep"][0].read_text(encoding="utf-8")  # written by SweepResult.save
    for fig_id in ("sweep-path", "sweep-gap", "sweep-learning-curves", "sweep-weight-norms", "sweep-weight-histograms"):
        m = re.search(rf'<figure id="{fig_id}"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert m and len(m.group(1)) > 2000, fig_id  # a real image, not an empty one
    assert "used only for this final report" in page and 'id="l2reg-explorer"' in page
    assert explorer.explorer_data(page)["models"][0]["values"]["lmbda"] == runs["sweep"].rows[0]["lmbda"]


def test_path_plot_puts_lmbda_zero_on_its_own_axis_or_has_one_log_axis(runs):
    zero_ax, log_ax = report.sweep_path_figure(runs["sweep"]).axes
    assert [t.get_text() for t in zero_ax.get_xticklabels()] == ["0"] and log_ax.get_xscale() == "log"
    r = runs["sweep-no-zero"]
    fig = report.sweep_path_figure(r)
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"
    assert "the smallest λ in the grid (0.1)" in report.sweep_gap_sentence(r)


def test_rich_table_has_one_row_per_lmbda_and_marks_the_choice(runs):
    from rich.console import Console

    r = runs["sweep"]
    console = Console(width=100, record=True)
    console.print(report.sweep_table(r))
    text = console.export_text()
    assert f"▶{r.config['select']}" in text
    assert sum(1 for line in text.splitlines() if line.strip().endswith(("refit", "folds"))) == len(r.rows)


# ---------------------------------------------------------------- in Chromium

CHROMIUM = os.environ.get("L2REG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed (pip install playwright)")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium, or set $L2REG_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Opened:
    """A report open in a 1400 px wide page, with every request and console message recorded."""

    def __init__(self, browser, path: Path):
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.requests, self.errors = [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def readout(self) -> dict:
        return self.page.eval_on_selector_all(
            "#l2reg-explorer .readout [data-field]",
            "els => Object.fromEntries(els.map(e => [e.dataset.field, e.textContent]))")

    def index(self) -> int:
        return int(self.page.get_attribute("#l2reg-explorer", "data-index"))

    def bars(self) -> list:
        return self.page.eval_on_selector_all("svg[data-chart=hist] rect.bar",
                                              "els => els.map(e => +e.getAttribute('data-count'))")


@pytest.fixture
def opened(browser):
    made = []

    def open_(path):
        made.append(Opened(browser, path))
        return made[-1]

    yield open_
    for o in made:
        o.context.close()


def check_position(o: Opened, kind, result, doc, data, j):
    assert o.index() == j
    shown = o.readout()
    for key, (value, fmt) in expected(kind, result, doc, j).items():
        if key in shown:
            assert agrees(shown[key], value, fmt), (kind, j, key, shown[key], value)
    edges = np.asarray(data["hist"]["edges"])
    w = page_weights(kind, result, j)
    assert o.bars() == np.histogram(np.clip(w, edges[0], edges[-1]), edges)[0].tolist()
    assert o.page.get_attribute(f"svg[data-chart=path] circle.pick[data-index='{j}']", "r") == "8"


@pytest.mark.parametrize("kind", KINDS)
def test_report_opens_offline_and_the_slider_shows_each_lmbda(opened, kind, runs, pages):
    path, doc = pages[kind]
    result = runs[kind]
    o = opened(path)
    data = explorer.explorer_data(path.read_text(encoding="utf-8"))
    n = len(data["models"])
    check_position(o, kind, result, doc, data, data["start"])
    slider = o.page.locator("#l2reg-lmbda")
    slider.focus()
    o.page.keyboard.press("Home")
    before = o.readout()
    check_position(o, kind, result, doc, data, 0)
    for j in range(1, n):
        o.page.keyboard.press("ArrowRight")
        check_position(o, kind, result, doc, data, j)
    assert o.readout() != before
    o.page.click("svg[data-chart=path] circle.pick[data-index='0']")  # a point of the path selects its λ
    check_position(o, kind, result, doc, data, 0)
    assert not o.errors, o.errors
    assert o.url in o.requests and all(u == o.url or u.startswith("data:") for u in o.requests), o.requests


@pytest.mark.parametrize("kind", ["sweep", "explain", "train"])
def test_figures_and_charts_are_shown_at_full_width(opened, kind, pages):
    o = opened(pages[kind][0])
    sizes = o.page.eval_on_selector_all("figure img", "els => els.map(e => [e.getBoundingClientRect().width, "
                                                      "e.naturalWidth])")
    assert sizes and all(shown >= 1200 and shown >= 0.8 * natural for shown, natural in sizes), sizes
    charts = o.page.eval_on_selector_all("#l2reg-explorer svg[data-chart]",
                                         "els => els.map(e => e.getBoundingClientRect().width)")
    assert charts and min(charts) * 13 / 620 >= 11  # their 13-unit text is 11 px or more on screen
    assert not o.errors, o.errors


def test_train_report_draws_its_charts_in_the_page_by_default(runs):
    """l2reg train's report.html: the runs and the explorer's charts, without the slower static figures."""
    page = report.train_report_html(runs["train"])
    assert "<figure" not in page and 'id="l2reg-explorer-data"' in page and "--figures png" in page


def test_the_decay_monitor_page_fits_a_1400_px_window(opened, tmp_path):
    """l2reg.torch.DecayMonitor's page (its tables in words, a note on decayed biases and norm scales): no
    horizontal scrolling in a 1400 px wide window."""
    torch = pytest.importorskip("torch")
    from l2reg.torch import DecayMonitor

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    with DecayMonitor(opt, model=model, steps_per_epoch=2, epochs=1) as mon:
        for _ in range(2):
            opt.zero_grad()
            model(torch.randn(16, 6)).pow(2).mean().backward()
            opt.step()
    o = opened(mon.write_html(tmp_path))
    assert o.page.evaluate("document.documentElement.scrollWidth") <= 1400
    widths = o.page.eval_on_selector_all("table", "els => els.map(e => e.getBoundingClientRect().right)")
    assert len(widths) == 2 and max(widths) <= 1400, widths
    assert not o.errors, o.errors
