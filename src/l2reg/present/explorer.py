"""The λ explorer: a slider over the trained λ grid that redraws a report's charts in the browser.

Each report (train, sweep, explain) embeds the numbers of every λ it trained
in a ``<script type="application/json" id="l2reg-explorer-data">`` block and
the plain JavaScript of ``assets/explorer.js`` (no library, no network): moving
the slider redraws, for that λ, the learning curves (training against
held-out accuracy and cost), Σw² per epoch, the histogram of the final weights
and the decay/data split, marks the λ on the path (the cross-validation curve
in a sweep), and writes its numbers (the same as the report's JSON file).

Histograms are counted here on bins shared by every λ, so the page holds a
few dozen numbers per λ rather than its weights: for 13 λ of a 784-30-10
network (24k weights each) with 30 epochs of curves the data take 25 kB and
the script 17 kB, of a 680 kB page (the rest is the figures); a slider move
redraws in about 13 ms (``bench/report_size.py``).
"""

from __future__ import annotations

import html
import json
import math
from importlib import resources

import numpy as np

from .plots import clipped_counts, hist_edges, lmbda_text
from .words import grid_symbol

CHARTS = ("path", "curves", "cost", "norm", "hist", "terms")
DIGITS = 5  # significant digits of the curves and Σw² in the page


def _num(x):
    x = float(x)
    return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else None


def _series(a):
    """A per-epoch array as a short JSON list (None where there is nothing: not recorded, or NaN)."""
    if a is None:
        return None
    a = np.asarray(a, np.float64).ravel()
    return [_num(x) for x in a] if a.size else None


def _value(x):
    """A number shown in the readout, at full precision (None when missing or not finite)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def weights_of(params) -> np.ndarray:
    """Every weight of one model (biases excluded), as one flat array."""
    return np.concatenate([np.ravel(layer["w"]) for layer in params])


def histograms(weights: list) -> tuple[dict, list]:
    """Shared clipped bins for the models' weights (None: not shown) and each model's counts."""
    present = [w for w in weights if w is not None]
    edges = hist_edges(present) if present else np.linspace(-1, 1, 3)
    counts, beyond = [], 0
    for w in weights:
        if w is None:
            counts.append(None)
            continue
        c, out = clipped_counts(w, edges)
        counts.append([int(x) for x in c])
        beyond = max(beyond, out)
    note = f"beyond ±{edges[-1]:.2g}: in the end bins" if beyond else ""
    return {"edges": [float(x) for x in edges], "note": note}, counts  # exact: a test recounts on them


def field(key: str, label: str, fmt: str = "g4") -> dict:
    """One number of the readout; ``fmt``: ``pct`` (a fraction shown in %, 2 decimals), ``pct1``, ``lmbda``, ``g4``."""
    return {"key": key, "label": label, "format": fmt}


def model(label: str, short: str, *, values: dict, sq, note: str = "", train=None, eval=None,
          train_cost=None, eval_cost=None, train_label="training", eval_label="test", terms=None,
          terms_note: str = "", hist_label: str = "", hist_note: str = "", diverged: bool = False) -> dict:
    """One λ's entry: its curves per epoch, its numbers, and (set by :func:`page_data`) its histogram.

    A diverged model keeps its curves but no terms, and :func:`page_data` gives it no histogram: its
    weights would set the scale of every other λ.
    """
    if diverged:
        terms, terms_note = None, "diverged: no terms"
        hist_note = "diverged: its weights are not shown"
    return {"diverged": bool(diverged),
        "label": label, "short": short, "note": note, "values": {k: _value(v) for k, v in values.items()},
        "train": _series(train), "eval": _series(eval), "train_cost": _series(train_cost),
        "eval_cost": _series(eval_cost), "train_label": train_label, "eval_label": eval_label,
        "sq": _series(sq), "terms": None if terms is None else {k: _value(v) for k, v in terms.items()},
        "terms_note": terms_note, "hist_label": hist_label, "hist_note": hist_note,
    }


def page_data(kind: str, models: list, weights: list, *, fields: list, path: dict, start: int,
              reference: int | None, regression: bool, eval_name: str, cost_label: str, sq_note: str = "",
              terms_when: str = "") -> dict:
    """The JSON the page embeds; ``weights[j]`` (flat array or None) gives model j's histogram."""
    hist, counts = histograms([None if m["diverged"] else w for m, w in zip(models, weights)])
    for m, c in zip(models, counts):
        m["hist"] = c
    has_terms = any(m["terms"] is not None for m in models)
    charts = [c for c in CHARTS if (c != "terms" or has_terms) and (c != "curves" or not regression)]
    if not has_terms:
        fields = [f for f in fields if f["key"] not in ("decay", "data", "away", "grew")]
    return {
        "version": 1, "kind": kind, "regression": bool(regression), "eval": eval_name, "cost_label": cost_label,
        "sq_note": sq_note, "terms_when": terms_when, "start": int(start),
        "reference": None if reference is None else int(reference), "path": path, "hist": hist,
        "fields": fields, "charts": charts, "models": models,
    }


def _asset(name: str) -> str:
    return resources.files("l2reg").joinpath("assets", name).read_text(encoding="utf-8")


_CHART_LABELS = {
    "path": "the path, with the selected λ marked", "curves": "accuracy per epoch", "cost": "cost per epoch",
    "norm": "sum of squared weights per epoch", "hist": "histogram of the final weights",
    "terms": "the decay and data terms",
}


def explorer_html(data: dict) -> str:
    """The explorer's HTML: slider, readout, one SVG per chart, the data block and the script."""
    n, sym = len(data["models"]), html.escape(data["path"].get("xlabel", "λ"))  # what the slider moves along
    cells = "".join(
        f'<div class="cell"><span class="k">{html.escape(f["label"])}</span>'
        f'<span class="v" data-field="{f["key"]}" data-format="{f["format"]}"></span></div>'
        for f in data["fields"])
    svgs = "".join(f'<svg data-chart="{c}" viewBox="0 0 620 320" role="img" '
                   f'aria-label="{html.escape(_CHART_LABELS[c]).replace("λ", sym)}"></svg>' for c in data["charts"])
    ticks = "".join(f'<span>{html.escape(m["short"])}</span>' for m in data["models"])
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/")  # a "</script>" inside a string would end the block
    return (
        f'<section id="l2reg-explorer" class="explorer">'
        f'<div class="controls"><label for="l2reg-lmbda">{sym}</label>'
        f'<div class="track"><input type="range" id="l2reg-lmbda" min="0" max="{n - 1}" step="1" '
        f'value="{data["start"]}" aria-label="{sym}"><div class="ticks">{ticks}</div></div>'
        f'<output data-field="label" for="l2reg-lmbda"></output></div>'
        f'<p class="note" data-field="note"></p><div class="readout">{cells}</div>'
        f'<div class="charts">{svgs}</div>'
        f'<noscript><p class="note">The explorer needs JavaScript; the figures below hold the same numbers.</p>'
        f'</noscript></section>\n'
        f'<script type="application/json" id="l2reg-explorer-data">{payload}</script>\n'
        f'<script>\n{_asset("explorer.js")}</script>'
    )


def explorer_data(html_text: str) -> dict:
    """The explorer's JSON back from a report page (for tests and tools)."""
    start = html_text.index('<script type="application/json" id="l2reg-explorer-data">')
    body = html_text[html_text.index(">", start) + 1: html_text.index("</script>", start)]
    return json.loads(body.replace("<\\/", "</"))


# ---------------------------------------------------------------- the sweep


def _sweep_fields(result) -> list:
    k, sym = result.config["folds"], grid_symbol(result.config)
    if result.regression:
        return [field("lmbda", sym, "lmbda"), field("cv", f"{k}-fold CV C0"), field("se", "± SE"),
                field("train", "train C0"), field("test", "test C0"), field("gap", "test − train"),
                field("sq", "Σw²"), field("decay", "mean |d|"), field("data", "mean |g|"),
                field("away", "g away from 0", "pct1")]
    return [field("lmbda", sym, "lmbda"), field("cv", f"{k}-fold CV %", "pct"), field("se", "± SE", "pct"),
            field("train", "train %", "pct"), field("test", "test %", "pct"), field("gap", "gap (points)", "pct"),
            field("sq", "Σw²"), field("decay", "mean |d|"), field("data", "mean |g|"),
            field("away", "g away from 0", "pct1")]


def _sweep_model(result, i: int, terms) -> tuple[dict, np.ndarray]:
    """Row i of the sweep as an explorer entry, and its weights (refit model, else fold 1's)."""
    from .plots_sweep import refit_of

    r, n, k = result.rows[i], result.config["n"], result.config["folds"]
    sym = grid_symbol(result.config)
    reg, hc, h = result.regression, result.cv.history, result.refit_history
    key = "cost" if reg else "accuracy"
    values = {"lmbda": r["lmbda"], "cv": r[f"cv_{key}_mean"], "se": r[f"cv_{key}_se"], "train": r[f"training_{key}"],
              "test": r[f"test_{key}"], "gap": r["gap"], "sq": r["weight_sq_norm"]}
    ri = refit_of(result, i)
    fold_mean = lambda name: hc[name][:, i, :].mean(axis=1) if name in hc else None  # noqa: E731
    common = dict(values=values, sq=fold_mean("weight_sq_norm"), diverged=bool(r.get("diverged")))
    if ri is not None:
        t = None if terms is None else {"decay": terms["mean_abs_decay"][ri], "data": terms["mean_abs_data"][ri],
                                        "away": terms["frac_away"][ri]}
        if t is not None:
            values.update(t)
        entry = model(f"{sym} = {lmbda_text(r['lmbda'])}", lmbda_text(r["lmbda"]), **common,
                      note=f"Refit on all n = {n}: its curves, weights and numbers.",
                      train=None if reg else h["training_accuracy"][:, ri],
                      eval=None if reg else h["test_accuracy"][:, ri],
                      train_cost=h["training_cost"][:, ri], eval_cost=h["test_cost"][:, ri], terms=t,
                      hist_label="the model refit on all n")
        return entry, weights_of(result.refit_params[ri])
    note = (f"Not refit: curves and numbers are the mean of the {k} fold models (validation = each one's held-out "
            f"fold), the weights those of fold 1's model.")
    entry = model(f"{sym} = {lmbda_text(r['lmbda'])}", lmbda_text(r["lmbda"]), **common, note=note,
                  train=None if reg else fold_mean("training_accuracy"),
                  eval=None if reg else fold_mean("validation_accuracy"),
                  train_cost=fold_mean("training_cost"), eval_cost=fold_mean("validation_cost"),
                  train_label="training (fold models)", eval_label="validation (fold models)",
                  terms_note=f"not measured: this {sym} was not refit", hist_label="fold 1's model (not refit)")
    return entry, np.concatenate([np.ravel(layer["w"][:, i, :]) for layer in result.cv.params])


def sweep_data(result) -> dict:
    """The explorer's data for a sweep: every λ of the path at the chosen η."""
    at = result.rows_at_chosen_eta()
    terms = getattr(result, "refit_terms", None)
    entries, weights = zip(*(_sweep_model(result, i, terms) for i in at))
    k, sel, reg = result.config["folds"], result.config["select"], result.regression
    scale = 1.0 if reg else 100.0
    key = "cost" if reg else "accuracy"
    marks = [{"index": at.index(result.chosen_index), "label": f"chosen ({sel})"}]
    if result.min_index in at and result.min_index != result.chosen_index:
        marks.append({"index": at.index(result.min_index), "label": "best mean", "dash": True, "row": 1})
    path = {"title": f"{k}-fold cross-validation {'C0' if reg else 'accuracy'} (click a point)",
            "ylabel": "validation C0" if reg else "accuracy (%)",
            "y": [_num(scale * result.rows[i][f"cv_{key}_mean"]) for i in at],
            "err": [_num(scale * result.rows[i][f"cv_{key}_se"]) for i in at], "marks": marks,
            "min_span": None if reg else 2.0, "xlabel": grid_symbol(result.config)}
    return page_data("sweep", list(entries), list(weights), fields=_sweep_fields(result), path=path,
                     start=at.index(result.chosen_index), reference=at.index(result.baseline_index),
                     regression=reg, eval_name="test", cost_label="C0 (no penalty)", sq_note="mean of the fold models",
                     terms_when="at the final weights (full-batch gradient)")


# ---------------------------------------------------------------- explain


def _c0(history, name, k):
    """Per-epoch C0 of model k: the recorded cost less the penalty, when both are there."""
    if name not in history:
        return None
    cost = history[name][:, k]
    return cost - history["penalty"][:, k] if "penalty" in history else cost


def explain_data(result) -> dict:
    """The explorer's data for an explain run: each λ (the λ = 0 companion first)."""
    h, s, reg = result.history, result.epoch_summary(), bool(result.config.get("regression"))
    ev = result.config["eval"]
    entries, weights = [], []
    for k in range(len(result.lmbdas)):
        tr = None if reg or "training_accuracy" not in h else h["training_accuracy"][:, k]
        te = None if reg or "evaluation_accuracy" not in h else h["evaluation_accuracy"][:, k]
        terms = {"decay": s["mean_abs_decay"][-1, k], "data": s["mean_abs_data"][-1, k], "away": s["frac_away"][-1, k]}
        values = {"lmbda": result.strength(k), "train": None if tr is None else tr[-1],
                  "test": None if te is None else te[-1],
                  "sq": s["weight_sq_norm"][-1, k], "ratio": s["weight_sq_ratio"][-1, k], "grew": s["frac_grow"][-1, k],
                  **terms}
        values["gap"] = None if tr is None or te is None else tr[-1] - te[-1]
        if reg and "training_cost" in h:
            values.update(train=_c0(h, "training_cost", k)[-1], test=_c0(h, "evaluation_cost", k)[-1])
            values["gap"] = values["test"] - values["train"]
        entries.append(model(result.label(k), f"{result.strength(k):.3g}", values=values, sq=h["weight_sq_norm"][:, k],
                             train=tr, eval=te, train_cost=_c0(h, "training_cost", k),
                             eval_cost=_c0(h, "evaluation_cost", k), eval_label=ev, terms=terms,
                             note="The same initial weights and mini-batches for every model.",
                             hist_label="after the last epoch"))
        weights.append(np.concatenate([np.ravel(layer["w"][:, k, :]) for layer in result.final_params]))
    unit, sym = "C0" if reg else "%", "wd" if result.weight_decays is not None else "λ"
    fields = [field("lmbda", sym, "lmbda"),
              field("train", f"train {unit}", "g4" if reg else "pct"),
              field("test", f"{ev} {unit}", "g4" if reg else "pct"),
              field("gap", "gap" if reg else "gap (points)", "g4" if reg else "pct"), field("sq", "Σw²"),
              field("ratio", "Σw² / Σw²(0)"), field("decay", "mean |d|"), field("data", "mean |g|"),
              field("away", "g away from 0", "pct1"), field("grew", "|w| grew", "pct1")]
    path = {"title": f"Final {ev} {'C0' if reg else 'accuracy'} against {sym} (click a point)", "xlabel": sym,
            "ylabel": f"{ev} C0" if reg else f"{ev} accuracy (%)", "err": None, "marks": [],
            "min_span": None if reg else 2.0,
            "y": [None if e["values"]["test"] is None else _num(e["values"]["test"] * (1 if reg else 100))
                  for e in entries]}
    return page_data("explain", entries, weights, fields=fields, path=path, start=len(entries) - 1, reference=0,
                     regression=reg, eval_name=ev, cost_label="C0 (no penalty)",
                     terms_when="in the last epoch (mean over the recorded steps)")


# ---------------------------------------------------------------- train


SETTINGS = (("eta", "η"), ("momentum", "μ"), ("weight_decay", "wd"), ("lmbda", "λ"))


def run_groups(result) -> list[tuple[str, list[int]]]:
    """The runs grouped by setting (η, μ, wd, λ), seeds together: ``(label, run indices)`` in run order.

    The label names the settings that vary between groups (λ alone in the usual case).
    """
    key = lambda r: tuple(str(r.get(name)) for name, _ in SETTINGS)  # noqa: E731
    groups: dict = {}
    for j, r in enumerate(result.runs):
        groups.setdefault(key(r), []).append(j)
    varying = [(i, sym) for i, (name, sym) in enumerate(SETTINGS) if len({g[i] for g in groups}) > 1]
    varying = varying or [(3, "λ")]
    out = []
    for g, runs in groups.items():
        r = result.runs[runs[0]]
        out.append((", ".join(f"{sym} = {lmbda_text(r[SETTINGS[i][0]])}" for i, sym in varying), runs))
    return out


def train_curves(result, runs: list[int]) -> dict:
    """Mean over the runs (seeds) of each per-epoch list; C0 = C − (λ/2n)·Σw² under plain L2 with one λ."""
    def mean(name):
        lists = [result.runs[j].get(name) or [] for j in runs]
        if not all(lists):
            return None
        size = min(len(x) for x in lists)
        return np.mean([np.asarray(x[:size], np.float64) for x in lists], axis=0)

    out = {name: mean(name) for name in ("training_accuracy", "evaluation_accuracy", "training_cost",
                                         "evaluation_cost", "weight_sq_norm")}
    c, lm = result.config, result.runs[runs[0]]["lmbda"]
    plain = c.get("penalty", "l2") == "l2" and not c.get("penalize_biases") and not isinstance(lm, (list, tuple))
    if plain and out["weight_sq_norm"] is not None:
        pen = 0.5 * float(lm) / c["n"] * out["weight_sq_norm"]
        for name in ("training_cost", "evaluation_cost"):
            if out[name] is not None and out[name].size == pen.size:
                out[name] = out[name] - pen
    out["c0"] = plain
    return out


def best_setting(result, groups) -> int | None:
    """The group with the best final evaluation score among those with λ > 0 (all when λ is per layer), or None."""
    reg = bool(result.config.get("regression"))
    key = "evaluation_cost" if reg else "evaluation_accuracy"
    best, score = None, -np.inf
    for j, (_, runs) in enumerate(groups):
        lm = result.runs[runs[0]]["lmbda"]
        v = train_curves(result, runs)[key]
        if (isinstance(lm, (list, tuple)) or lm > 0) and v is not None and np.isfinite(v[-1]):
            s = -float(v[-1]) if reg else float(v[-1])
            if s > score:
                best, score = j, s
    return best


def train_data(result) -> dict:
    """The explorer's data for a train run: one entry per setting, seeds averaged."""
    reg, ev = bool(result.config.get("regression")), result.config["eval"]
    groups = run_groups(result)
    entries, weights, finals = [], [], []
    for label, runs in groups:
        cur = train_curves(result, runs)
        last = {name: None if cur[name] is None else cur[name][-1] for name in cur if name != "c0"}
        key = "cost" if reg else "accuracy"
        values = {"lmbda": result.runs[runs[0]]["lmbda"] if not isinstance(result.runs[runs[0]]["lmbda"], (list, tuple))
                  else None, "train": last[f"training_{key}"], "test": last[f"evaluation_{key}"],
                  "sq": last["weight_sq_norm"]}
        values["gap"] = None if values["train"] is None or values["test"] is None else (
            values["test"] - values["train"] if reg else values["train"] - values["test"])
        seeds = f"; curves and numbers are the mean of {len(runs)} seeds" if len(runs) > 1 else ""
        entries.append(model(label, label.split(" = ")[-1] if label.count("=") == 1 else str(len(entries) + 1),
                             values=values, diverged=any(result.runs[j].get("diverged") for j in runs),
                             sq=cur["weight_sq_norm"],
                             train=cur["training_accuracy"] if not reg else None,
                             eval=cur["evaluation_accuracy"] if not reg else None, train_cost=cur["training_cost"],
                             eval_cost=cur["evaluation_cost"], eval_label=ev,
                             note=f"Trained on n = {result.config['n']}, evaluated on the {ev} set{seeds}.",
                             hist_label=f"after the last epoch{', all seeds' if len(runs) > 1 else ''}"))
        weights.append(np.concatenate([weights_of(result.params[j]) for j in runs]))
        finals.append(values["test"])
    scale = 1.0 if reg else 100.0
    best = best_setting(result, groups)
    start = 0 if best is None else best
    zero = [j for j, (_, runs) in enumerate(groups) if result.runs[runs[0]]["lmbda"] in (0, 0.0)]
    unit = "C0" if reg else "%"
    fmt = "g4" if reg else "pct"
    fields = [field("train", f"train {unit}", fmt), field("test", f"{ev} {unit}", fmt),
              field("gap", "gap" if reg else "gap (points)", fmt), field("sq", "Σw²")]
    if all(e["values"]["lmbda"] is not None for e in entries):
        fields.insert(0, field("lmbda", "λ", "lmbda"))
    path = {"title": f"Final {ev} {'C0' if reg else 'accuracy'} of each setting (click a point)",
            "ylabel": f"{ev} C0" if reg else f"{ev} accuracy (%)", "err": None, "min_span": None if reg else 2.0,
            "y": [None if v is None else _num(scale * v) for v in finals],
            "marks": [] if best is None else [{"index": best, "label": f"best on {ev}, λ > 0"}]}
    c0 = train_curves(result, groups[0][1])["c0"]
    return page_data("train", entries, weights, fields=fields, path=path, start=start,
                     reference=zero[0] if zero and len(groups) > 1 else None, regression=reg, eval_name=ev,
                     cost_label="C0 (no penalty)" if c0 else "C (penalty included)")
