"""Presenting results: Rich tables for the terminal (plots come with the sweep)."""

from __future__ import annotations

import numpy as np
from rich.table import Table


def _fmt(values, kind: str) -> str:
    if not values:
        return "-"
    v = values[-1]
    if kind == "acc":
        return f"{100 * v:.2f}%"
    return f"{v:.4g}"


def train_table(result) -> Table:
    """One row per run (λ, seed): final costs, accuracies and Σw²."""
    multi_seed = len({r["seed"] for r in result.runs}) > 1
    regression = result.config.get("regression", False)
    table = Table(title=f"l2reg train: {result.config['dataset']}, n = {result.config['n']}, "
                        f"{result.config['epochs']} epochs", title_justify="left")
    # Swept optimizer settings get a column when they vary (or, for wd, whenever AdamW ran).
    extra = [(key, label) for key, label in (("eta", "η"), ("momentum", "μ"), ("weight_decay", "wd"))
             if len({str(r.get(key)) for r in result.runs}) > 1 or (key == "weight_decay" and key in result.runs[0])]
    sparse = result.config.get("penalty") in ("l1", "elastic-net")
    stopped = "stopped_epoch" in result.runs[0]
    full_batch = "iterations" in result.runs[0]
    table.add_column("λ", justify="right")
    for _, label in extra:
        table.add_column(label, justify="right")
    if multi_seed:
        table.add_column("seed", justify="right")
    table.add_column("train cost", justify="right")
    if not regression:
        table.add_column("train acc", justify="right")
    table.add_column(f"{result.config['eval']} cost", justify="right")
    if not regression:
        table.add_column(f"{result.config['eval']} acc", justify="right")
    table.add_column("Σw²", justify="right")
    if sparse:
        table.add_column("w = 0", justify="right")
    if stopped:
        table.add_column("stopped (best)", justify="right")
    if full_batch:
        table.add_column("iterations", justify="right")
    for r in result.runs:
        lm = r["lmbda"]
        row = [",".join(f"{x:g}" for x in lm) if isinstance(lm, (list, tuple)) else f"{lm:g}"]
        row += [f"{r[key]:g}" for key, _ in extra]
        if multi_seed:
            row.append(str(r["seed"]))
        row.append(_fmt(r["training_cost"], "cost"))
        if not regression:
            row.append(_fmt(r["training_accuracy"], "acc"))
        row.append(_fmt(r["evaluation_cost"], "cost"))
        if not regression:
            row.append(_fmt(r["evaluation_accuracy"], "acc"))
        row.append(_fmt(r["weight_sq_norm"], "cost"))
        if sparse:
            row.append(_fmt(r.get("zero_weight_fraction", []), "acc"))
        if stopped:
            row.append(f"{r['stopped_epoch']} ({r['best_epoch']})")
        if full_batch:
            row.append(f"{r['iterations']}" + ("" if r["converged"] else " (not converged)"))
        table.add_row(*row)
    return table


# ---------------------------------------------------------------- HTML pages
#
# Self-contained pages: inline CSS, figures as base64 PNG, no script and no
# external reference, so a report opens offline and can be mailed as one file.


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.92em; margin: 1em 0; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } tr.chosen td { font-weight: bold; background: #fff7e0; }
td.dim { color: #888; } figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; } .note { color: #555; font-size: 0.92em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def html_page(title: str, sections) -> str:
    """A complete, self-contained HTML page.

    ``sections`` is a sequence of ``(heading, body_html)`` pairs; a ``None``
    heading puts the body directly under the title. Bodies are trusted HTML
    (build them with :func:`figure_html`, :func:`table_html` and
    ``html.escape``).
    """
    import html

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(body)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (closes the figure)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def figure_html(fig, fig_id: str, caption: str = "") -> str:
    """A ``<figure>`` holding ``fig`` as an inline base64 PNG."""
    import base64
    import html

    data = base64.b64encode(figure_png(fig)).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure id="{html.escape(fig_id)}"><img alt="{html.escape(caption or fig_id)}" '
            f'src="data:image/png;base64,{data}">{cap}</figure>')


def table_html(headers, rows, row_classes=None, cell_classes=None) -> str:
    """A plain HTML table; cells are escaped."""
    import html

    out = ["<table><thead><tr>", *(f"<th>{html.escape(str(h))}</th>" for h in headers), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>")
        for j, cell in enumerate(row):
            ccls = cell_classes[i][j] if cell_classes else ""
            out.append(f"<td{f' class={chr(34)}{ccls}{chr(34)}' if ccls else ''}>{html.escape(str(cell))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------- the sweep


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _lmbda_label(x: float) -> str:
    return f"{x:.3g}"


def sweep_gap_sentence(result) -> str:
    """How much the chosen λ closed the train − test gap of the baseline (the smallest λ, normally 0)."""
    rows, c = result.rows, result.chosen_index
    b = getattr(result, "baseline_index", 0)  # the smallest λ at the chosen η
    base, chosen = rows[b], rows[c]
    base_name = "λ = 0" if base["lmbda"] == 0 else f"the smallest λ in the grid ({_lmbda_label(base['lmbda'])})"
    rule = result.config["select"]
    if result.regression:
        unit, fmt = "", (lambda g: f"{g:.4g}")
        what, score = "test − train cost gap", (lambda r: f"test cost {r['test_cost']:.4g}")
    else:
        unit, fmt = " points", (lambda g: f"{100 * g:.1f}")
        what, score = "train − test gap", (lambda r: f"test accuracy {_pct(r['test_accuracy'])}")
    if c == b:
        return (f"Cross-validation ({rule}) chose {base_name} itself: regularization did not help here "
                f"({what} {fmt(base['gap'])}{unit}, {score(base)}).")
    g0, g1 = base["gap"], chosen["gap"]
    if result.regression:
        change = f"test cost {base['test_cost']:.4g} → {chosen['test_cost']:.4g}"
    else:
        change = f"test accuracy {_pct(base['test_accuracy'])} → {_pct(chosen['test_accuracy'])}"
    head = f"λ = {_lmbda_label(chosen['lmbda'])} ({rule})"
    if len(getattr(result, "etas", ())) > 1:
        head = f"λ = {_lmbda_label(chosen['lmbda'])} at η = {chosen['eta']:g} ({rule})"
        base_name += f" at η = {chosen['eta']:g}"
    if fmt(g0) == fmt(g1):
        return f"{head} left the {what} of {base_name} unchanged at {fmt(g0)}{unit}; {change}."
    if g1 < g0:
        share = f" ({100 * (g0 - g1) / g0:.0f}% of it)" if g0 > 0 else ""
        verb = "closed" if g0 > 0 else "narrowed"
    else:
        share, verb = "", "widened"
    return f"{head} {verb} the {what} from {fmt(g0)} to {fmt(g1)}{unit}{share} compared with {base_name}; {change}."


TEST_SET_NOTE = "The test set was used only for this final report, never to choose λ."


def _sweep_rows_text(result):
    """Header, formatted cells and "from the fold models" flags, shared by the terminal and HTML tables."""
    reg = result.regression
    if reg:
        headers = ["", "λ", "λ/n", "CV cost", "± SE", "train cost", "test cost", "test − train", "Σw²", "from"]
    else:
        headers = ["", "λ", "λ/n", "CV acc %", "± SE", "train %", "test %", "gap", "Σw²", "from"]
    several = len(result.etas) > 1
    if several:
        headers.insert(1, "η")
    cells, dims = [], []
    for i, r in enumerate(result.rows):
        if r.get("diverged") and not r["refit"]:
            cv, se, tr, te, gap = "diverged", "", "-", "-", "-"
        elif reg:
            cv, se = f"{r['cv_cost_mean']:.4g}", f"{r['cv_cost_se']:.2g}"
            tr, te, gap = f"{r['training_cost']:.4g}", f"{r['test_cost']:.4g}", f"{r['gap']:.4g}"
        else:
            cv, se = f"{100 * r['cv_accuracy_mean']:.2f}", f"{100 * r['cv_accuracy_se']:.2f}"
            tr, te = f"{100 * r['training_accuracy']:.2f}", f"{100 * r['test_accuracy']:.2f}"
            gap = f"{100 * r['gap']:.2f}"
        if r.get("diverged") and r["refit"]:
            cv, se = "diverged", ""
        mark = ""
        if r["chosen"]:
            mark = f"▶{result.config['select']}"
        elif i == result.min_index:
            mark = "min"
        cells.append([mark, _lmbda_label(r["lmbda"]), f"{r['lmbda_over_n']:.2g}", cv, se, tr, te, gap,
                      f"{r['weight_sq_norm']:.4g}", "refit" if r["refit"] else "folds"])
        if several:
            cells[-1].insert(1, f"{r['eta']:g}")
        dims.append(not r["refit"])
    return headers, cells, dims


def sweep_table(result):
    """The Rich table: one row per λ, the chosen one marked."""
    from rich.table import Table

    c = result.config
    headers, cells, dims = _sweep_rows_text(result)
    lo, hi = min(c["n_fold"]), max(c["n_fold"])
    n_fold = f"{lo}" if lo == hi else f"{lo}–{hi}"
    gap = "test − train cost" if result.regression else "gap = train − test accuracy (points)"
    from rich import box

    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title=f"l2reg sweep: {c['dataset']}, n = {c['n']}, {c['folds']}-fold CV ({n_fold} per fold), "
              f"{c['epochs']} epochs",
        title_justify="left",
        caption=(f"train/test/{'' if result.regression else 'gap/'}Σw²: \"refit\" = the model refit on all "
                 f"n = {c['n']}; \"folds\" = mean of the {c['folds']} fold models (dim). {gap}."),
        caption_justify="left",
    )
    keep = [j for j, h in enumerate(headers) if h != "λ/n"]  # in the HTML report and sweep.json
    for j in keep:
        table.add_column(headers[j], justify="left" if headers[j] in ("", "from") else "right", no_wrap=True)
    for row, dim, r in zip(cells, dims, result.rows):
        first = headers.index("± SE") + 1  # the train/test columns onward
        out = [f"[dim]{x}[/dim]" if dim and not r["chosen"] and j >= first else x for j, x in enumerate(row)]
        table.add_row(*[out[j] for j in keep], style="bold" if r["chosen"] else None)
    return table


def sweep_path_figure(result):
    """CV score ± SE against λ (log axis; λ = 0 on its own short axis), training and test, chosen λ marked."""
    plt = _pyplot()
    at = result.rows_at_chosen_eta()  # the λ path at the chosen η
    rows = [result.rows[i] for i in at]
    min_index = at.index(result.min_index) if result.min_index in at else -1
    chosen_index = at.index(result.chosen_index)
    reg = result.regression
    lm = np.array([r["lmbda"] for r in rows])
    key = "cost" if reg else "accuracy"
    scale = 1.0 if reg else 100.0
    cv_mean = scale * np.array([r[f"cv_{key}_mean"] for r in rows])
    cv_se = scale * np.array([r[f"cv_{key}_se"] for r in rows])
    k = result.config["folds"]
    f = result.cv.final
    train_folds = scale * f[f"training_{key}"][at].mean(axis=1)
    test_folds = scale * f[f"test_{key}"][at].mean(axis=1)
    refit = [i for i, r in enumerate(rows) if r["refit"]]
    train_refit = scale * np.array([rows[i][f"training_{key}"] for i in refit])
    test_refit = scale * np.array([rows[i][f"test_{key}"] for i in refit])

    has_zero = lm[0] == 0 and len(lm) > 1
    if has_zero:
        fig, (ax0, ax) = plt.subplots(1, 2, sharey=True, figsize=(8, 4.2),
                                      gridspec_kw={"width_ratios": [1, 9], "wspace": 0.04})
    else:
        fig, ax = plt.subplots(figsize=(8, 4.2))
        ax0 = None

    def draw(a, idx, x):
        a.errorbar(x, cv_mean[idx], yerr=cv_se[idx], fmt="o-", color="C0", capsize=3, ms=4,
                   label=f"{k}-fold CV (mean ± SE)")
        a.plot(x, train_folds[idx], "--", color="C1", lw=1, label="training (fold models)")
        a.plot(x, test_folds[idx], "--", color="C2", lw=1, label="test (fold models)")
        sel = [j for j, i in enumerate(refit) if i in set(idx)]
        xr = [x[list(idx).index(refit[j])] for j in sel]
        a.plot(xr, train_refit[sel], "s", color="C1", ms=6, label="training (refit on all n)")
        a.plot(xr, test_refit[sel], "D", color="C2", ms=6, label="test (refit on all n)")
        for i, style, name in ((min_index, ":", "min"), (chosen_index, "-", result.config["select"])):
            if i in set(idx):
                a.axvline(x[list(idx).index(i)], color="C3", ls=style, lw=1.2)

    pos = list(range(1 if has_zero else 0, len(lm)))
    draw(ax, pos, lm[pos])
    ax.set_xscale("log")
    ax.set_xlabel("λ (log scale)")
    if ax0 is not None:
        draw(ax0, [0], np.array([0.0]))
        ax0.set_xlim(-1, 1)
        ax0.set_xticks([0])
        ax0.set_xticklabels(["0"])
        ax0.spines["right"].set_visible(False)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", left=False)
        d = 0.015
        kw = dict(transform=ax0.transAxes, color="k", clip_on=False, lw=1)
        ax0.plot((1 - d * 9, 1 + d * 9), (-d, d), **kw)
        ax0.plot((1 - d * 9, 1 + d * 9), (1 - d, 1 + d), **kw)
        kw["transform"] = ax.transAxes
        ax.plot((-d, d), (-d, d), **kw)
        ax.plot((-d, d), (1 - d, 1 + d), **kw)
        ylab_ax = ax0
    else:
        ylab_ax = ax
    ylab_ax.set_ylabel("mean C0" if reg else "accuracy (%)")
    chosen = result.chosen_lmbda
    title = f"Regularization path: chosen λ = {_lmbda_label(chosen)} ({result.config['select']}, solid red line"
    if len(result.etas) > 1:
        title = f"Regularization path at the chosen η = {result.chosen_eta:g}: λ = {_lmbda_label(chosen)} " \
                f"({result.config['select']}, solid red line"
    if result.config["select"] != "min" and min_index >= 0:
        title += f"; min = {_lmbda_label(rows[min_index]['lmbda'])}, dotted"
    fig.suptitle(title + ")", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if not handles and ax0 is not None:
        handles, labels = ax0.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=8, loc="best")
    for a in (ax0, ax):
        if a is not None:
            a.grid(True, alpha=0.3)
    return fig


def sweep_learning_curves_figure(result):
    """Training vs test accuracy (cost for regression) per epoch of the refit models: baseline and chosen λ."""
    plt = _pyplot()
    h = result.refit_history
    key = "cost" if result.regression else "accuracy"
    picks = [result.baseline_lmbda] + ([result.chosen_lmbda] if result.chosen_lmbda != result.baseline_lmbda else [])
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 3.6), sharey=True, squeeze=False)
    scale = 1.0 if result.regression else 100.0
    for a, lm in zip(axes[0], picks):
        r = result.refit_index(lm)
        epochs = np.arange(1, h[f"training_{key}"].shape[0] + 1)
        a.plot(epochs, scale * h[f"training_{key}"][:, r], color="C1", label="training data")
        a.plot(epochs, scale * h[f"test_{key}"][:, r], color="C2", label="test data")
        a.set_title(f"λ = {_lmbda_label(lm)}" + (" (chosen)" if lm == result.chosen_lmbda else ""), fontsize=10)
        a.set_xlabel("epoch")
        a.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean C0" if result.regression else "accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Learning curves, refit on all n = {result.config['n']}", fontsize=10)
    return fig


def sweep_weight_norm_figure(result):
    """Σw² per epoch for every λ (mean over the folds)."""
    plt = _pyplot()
    import matplotlib as mpl

    at = result.rows_at_chosen_eta()
    sq = result.cv.history["weight_sq_norm"][:, at].mean(axis=2)  # (epochs, L) at the chosen η
    lm = [result.lmbdas[i] for i in at]
    chosen = at.index(result.chosen_index)
    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = mpl.colormaps["viridis"]
    epochs = np.arange(1, sq.shape[0] + 1)
    for l, x in enumerate(lm):
        ax.plot(epochs, sq[:, l], color=cmap(l / max(1, len(lm) - 1)),
                lw=2.2 if l == chosen else 1.0,
                label=f"λ = {_lmbda_label(x)}" + (" (chosen)" if l == chosen else ""))
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Σw² (mean over folds)")
    ax.set_title("Σw² per epoch: larger λ pulls the weights toward zero"
                 + (f" (η = {result.chosen_eta:g})" if len(result.etas) > 1 else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=2 if len(lm) > 8 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(True, alpha=0.3)
    return fig


def sweep_weight_histogram_figure(result):
    """Histograms of the final weights (all layers) of the refit baseline and chosen models."""
    plt = _pyplot()
    picks = [result.baseline_lmbda] + ([result.chosen_lmbda] if result.chosen_lmbda != result.baseline_lmbda else [])
    ws = [np.concatenate([np.ravel(layer["w"]) for layer in result.refit_params[result.refit_index(lm)]])
          for lm in picks]
    lo, hi = min(float(w.min()) for w in ws), max(float(w.max()) for w in ws)
    bins = np.linspace(lo, hi, 60) if hi > lo else 10
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for w, lm, color in zip(ws, picks, ("C0", "C3")):
        ax.hist(w, bins=bins, alpha=0.55, color=color,
                label=f"λ = {_lmbda_label(lm)}: Σw² = {float(np.sum(w ** 2)):.4g}")
    ax.set_xlabel("weight")
    ax.set_ylabel("count")
    ax.set_title("Final weights (refit models, biases excluded)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig


def sweep_heatmap_figure(result):
    """Mean CV accuracy (cost for regression) over (η, λ); diverged pairs blank, the chosen pair boxed."""
    plt = _pyplot()
    etas, reg = result.etas, result.regression
    E = len(etas)
    L = len(result.rows) // E
    key = "cv_cost_mean" if reg else "cv_accuracy_mean"
    scale = 1.0 if reg else 100.0
    grid = np.array([np.nan if r.get("diverged") else scale * r[key] for r in result.rows]).reshape(E, L)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * L, 1.2 + 0.5 * E))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r" if reg else "viridis", aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, label="mean CV cost" if reg else "mean CV accuracy (%)")
    for e in range(E):
        for l in range(L):
            v = grid[e, l]
            ax.text(l, e, "div." if np.isnan(v) else (f"{v:.3g}" if reg else f"{v:.1f}"), ha="center", va="center",
                    fontsize=7, color="k" if np.isnan(v) else "w")
    ce, cl = divmod(result.chosen_index, L)
    ax.add_patch(plt.Rectangle((cl - 0.5, ce - 0.5), 1, 1, fill=False, ec="C3", lw=2.5))
    ax.set_xticks(range(L))
    ax.set_xticklabels([_lmbda_label(result.rows[l]["lmbda"]) for l in range(L)], rotation=45, fontsize=8)
    ax.set_yticks(range(E))
    ax.set_yticklabels([f"{x:g}" for x in etas], fontsize=8)
    ax.set_xlabel("λ")
    ax.set_ylabel("η")
    ax.set_title(f"Mean CV {'cost' if reg else 'accuracy'} over (η, λ); chosen pair boxed "
                 f"({result.config['select']})", fontsize=10)
    return fig


def sweep_report_html(result) -> str:
    """The sweep's self-contained report: summary, table and the four plots."""
    import html

    c = result.config
    headers, cells, dims = _sweep_rows_text(result)
    row_classes = ["chosen" if r["chosen"] else "" for r in result.rows]
    first = headers.index("± SE") + 1
    cell_classes = [["dim" if (d and first <= j) else "" for j in range(len(headers))] for d in dims]
    settings = (
        f"dataset <code>{html.escape(str(c['dataset']))}</code>, sizes {'-'.join(map(str, c['sizes']))}, "
        f"{html.escape(c['activation'])} hidden units, {html.escape(c['cost'])} cost, init {html.escape(c['init'])}, "
        f"η = {c['eta']:g}{' (chosen from ' + ', '.join(f'{x:g}' for x in result.etas) + ')' if len(result.etas) > 1 else ''}, m = {c['batch_size']}, {c['epochs']} epochs, n = {c['n']} training examples, "
        f"{c['folds']}-fold stratified CV (n per fold = {', '.join(map(str, sorted(set(c['n_fold']))))}), "
        f"seed {c['seed']}, {c['models_cv']} CV models + {c['models_refit']} refit models, "
        f"{result.train_seconds:.1f} s training + {result.compile_seconds:.1f} s compiling."
    )
    summary = (
        f"<p><b>Chosen λ = {_lmbda_label(result.chosen_lmbda)}</b> (rule <code>{html.escape(c['select'])}</code>"
        f"{'' if c['select'] == 'min' else ': the largest λ within one standard error of the best mean'}).</p>"
        f"<p>{html.escape(sweep_gap_sentence(result))}</p>"
        f"<p><b>{html.escape(TEST_SET_NOTE)}</b></p><p class=\"note\">{settings}</p>"
        f"<p class=\"note\">The cost is C = C0 + (λ/2n)·Σw², n = the training-set size of each model "
        f"(a fold's training part in cross-validation, all n for the refit).</p>"
    )
    table = table_html(headers, cells, row_classes, cell_classes) + (
        f'<p class="note">train/test columns: the model refit on all n = {c["n"]} ("refit") or the mean of the '
        f'{c["folds"]} fold models (grey).</p>')
    sections = [(None, summary), ("The path, one row per λ" if len(result.etas) == 1 else
                                  "The grid, one row per (η, λ)", table)]
    if len(result.etas) > 1:
        sections.append(("Learning rate × λ", figure_html(
            sweep_heatmap_figure(result), "sweep-heatmap",
            "Mean cross-validation score of every (η, λ) pair; blank cells diverged (ignored by the selection). "
            "The plots below are at the chosen η.")))
    sections.append(("Cross-validation path", figure_html(
        sweep_path_figure(result), "sweep-path",
        "Mean validation score ± standard error over the folds against λ; training and test scores of the fold "
        "models (dashed) and of the refit models (markers). The chosen λ is the solid red line.")))
    sections.append(("Learning curves", figure_html(
        sweep_learning_curves_figure(result), "sweep-learning-curves",
        "Training against test score per epoch for the baseline and the chosen λ (Nielsen, chapter 3).")))
    sections.append(("Σw² per epoch", figure_html(
        sweep_weight_norm_figure(result), "sweep-weight-norms", "Σw² per epoch for each λ, mean over the folds.")))
    sections.append(("Final weights", figure_html(
        sweep_weight_histogram_figure(result), "sweep-weight-histograms",
        "Histograms of the final weights of the refit models: the baseline and the chosen λ.")))
    return html_page(f"l2reg sweep: {c['dataset']}", sections)


# ---------------------------------------------------------------- explain and convert


def explain_table(result) -> Table:
    """One row per λ: what the two terms did at the last epoch, and Σw² against λ = 0."""
    from rich import box

    s = result.epoch_summary()
    regression = result.config.get("regression", False)
    table = Table(title=f"l2reg explain: {result.config['dataset']}, n = {result.config['n']}, last of "
                        f"{result.epochs} epochs ({result.steps_per_epoch // result.record_every} recorded steps "
                        f"per epoch)", title_justify="left")
    table.box = box.SIMPLE_HEAD
    table.pad_edge = False
    table.padding = (0, 1, 0, 0)
    for name in ("model", "g\naway", "|w|\ngrew", "grew's\nΣw²", "mean\n|d|", "mean\n|g|", "|d|/\n|g|", "Σw²",
                 "vs\nλ=0"):
        table.add_column(name, justify="right", no_wrap=True)
    if not regression and "evaluation_accuracy" in result.history:
        table.add_column(f"{result.config['eval'][:3]}\nacc", justify="right", no_wrap=True)
    for k, lmbda in enumerate(result.lmbdas):
        row = [result.label(k), f"{100 * s['frac_away'][-1, k]:.1f}%", f"{100 * s['frac_grow'][-1, k]:.1f}%",
               f"{100 * s['grow_sq_share'][-1, k]:.1f}%", f"{s['mean_abs_decay'][-1, k]:.2g}",
               f"{s['mean_abs_data'][-1, k]:.2g}", f"{s['decay_to_data'][-1, k]:.2g}",
               f"{s['weight_sq_norm'][-1, k]:.4g}", f"{s['weight_sq_ratio'][-1, k]:.2f}"]
        if not regression and "evaluation_accuracy" in result.history:
            row.append(f"{100 * result.history['evaluation_accuracy'][-1, k]:.1f}%")
        table.add_row(*row)
    table.caption = ("g away: data term pointing away from zero, sign(g) = sign(w); |w| grew: on net; "
                     "d, g: decay and data terms of one step; vs λ=0: Σw² / Σw²(λ = 0).")
    return table


def _explain_sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def explain_terms_figure(result, k: int, max_points: int = 4000):
    """Each weight against its data term g and its decay term d, at the snapshot epochs (all layers)."""
    plt = _pyplot()
    epochs = sorted(result.snapshots)
    fig, axes = plt.subplots(1, len(epochs), figsize=(3.6 * len(epochs), 3.6), squeeze=False)
    for a, e in zip(axes[0], epochs):
        layers = result.snapshots[e]
        w = np.concatenate([layer["w"][:, k, :].ravel() for layer in layers])
        d = np.concatenate([layer["d"][:, k, :].ravel() for layer in layers])
        g = np.concatenate([layer["g"][:, k, :].ravel() for layer in layers])
        sel = _explain_sample(w.size, max_points)
        w, d, g = w[sel], d[sel], g[sel]
        away = g * w > 0
        a.scatter(w[~away], g[~away], s=3, alpha=0.35, color="C0", lw=0, label="data term g, toward 0")
        a.scatter(w[away], g[away], s=3, alpha=0.35, color="C1", lw=0, label="data term g, away from 0")
        order = np.argsort(w)
        a.plot(w[order], d[order], color="C3", lw=1.6, label="decay term d = −(ηλ/n)·w")
        a.axhline(0, color="k", lw=0.5)
        a.axvline(0, color="k", lw=0.5)
        lim = float(np.quantile(np.abs(np.concatenate([g, d])), 0.995)) or 1.0
        a.set_ylim(-1.2 * lim, 1.2 * lim)
        a.set_xlabel("weight w")
        a.set_title(f"epoch {e + 1}: {100 * away.mean():.0f}% pushed away", fontsize=9)
        a.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("term of one SGD step")
    axes[0][-1].legend(fontsize=7, loc="upper right", markerscale=3)
    fig.suptitle(f"{result.label(k)}: the decay term always points toward 0, the data term either way",
                 fontsize=10)
    fig.tight_layout()
    return fig


def explain_trajectories_figure(result, k: int):
    """Sampled weights over training, under λ = 0 (dashed) and under λ (solid), from the same start."""
    plt = _pyplot()
    layers = sorted(set(result.tracked_index[:, 0].tolist()))
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(4.6 * max(len(layers), 1), 3.4), squeeze=False)
    x = (result.steps + 1) / result.steps_per_epoch
    for a, layer in zip(axes[0], layers):
        rows = np.flatnonzero(result.tracked_index[:, 0] == layer)
        for c, t in enumerate(rows):
            _, i, o = result.tracked_index[t]
            a.plot(x, result.tracked[:, t, 0], "--", color=f"C{c}", lw=1)
            a.plot(x, result.tracked[:, t, k], "-", color=f"C{c}", lw=1.4, label=f"w[{i},{o}]")
        a.axhline(0, color="k", lw=0.5)
        a.set_xlabel("epoch")
        a.set_title(f"layer {layer + 1}: solid {result.label(k)}, dashed no decay", fontsize=9)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    axes[0][0].set_ylabel("weight")
    fig.tight_layout()
    return fig


def explain_fractions_figure(result):
    """Per epoch: the share of weights whose data term pointed away from zero, and whose |w| grew."""
    plt = _pyplot()
    s = result.epoch_summary()
    x = np.arange(1, result.epochs + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for k in range(len(result.lmbdas)):
        ax.plot(x, 100 * s["frac_away"][:, k], "-", color=f"C{k}", marker="o", ms=3, label=f"{result.label(k)}: g away from 0")
        ax.plot(x, 100 * s["frac_grow"][:, k], "--", color=f"C{k}", label=f"{result.label(k)}: |w| grew on net")
    ax.set_xlabel("epoch")
    ax.set_ylabel("% of weights (mean over recorded steps)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def explain_histograms_figure(result, k: int):
    """Final weights under λ = 0 and λ; magnitudes of the two terms at the last snapshot."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.2, 3.4))
    w = [np.concatenate([layer["w"][:, j, :].ravel() for layer in result.final_params]) for j in (0, k)]
    bins = np.linspace(min(x.min() for x in w), max(x.max() for x in w), 60)
    a1.hist(w[0], bins=bins, alpha=0.55, color="C0", label=result.label(0))
    a1.hist(w[1], bins=bins, alpha=0.55, color="C3", label=result.label(k))
    a1.set_yscale("log")
    a1.set_xlabel("final weight")
    a1.set_ylabel("count")
    a1.legend(fontsize=8)
    last = result.snapshots[max(result.snapshots)]
    g = np.abs(np.concatenate([layer["g"][:, k, :].ravel() for layer in last]))
    d = np.abs(np.concatenate([layer["d"][:, k, :].ravel() for layer in last]))
    # Zero terms (weights of inputs that are always 0 get no data term) have no logarithm: counted in the legend.
    lg, ld = np.log10(g[g > 0]), np.log10(d[d > 0])
    both = np.concatenate([lg, ld])
    if both.size:
        bins = np.linspace(np.quantile(both, 0.002), both.max(), 60)
        a2.hist(lg, bins=bins, alpha=0.55, color="C0", label=f"|data term g| ({int((g == 0).sum())} are 0)")
        a2.hist(ld, bins=bins, alpha=0.55, color="C3", label=f"|decay term d| ({int((d == 0).sum())} are 0)")
    a2.set_xlabel("log10 of the term's size, last recorded step")
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def explain_norm_figure(result):
    """Σw² per epoch for every λ, the λ = 0 companion included."""
    plt = _pyplot()
    sq = result.history["weight_sq_norm"]
    x = np.arange(1, result.epochs + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for k in range(len(result.lmbdas)):
        ax.plot(x, sq[:, k], color=f"C{k}", label=result.label(k))
    ax.set_xlabel("epoch")
    ax.set_ylabel("Σw² (end of epoch)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def explain_report_html(result) -> str:
    """The explain report: answer, derivation, table and plots, self-contained."""
    import html

    from .explain import answer, derivation

    c = result.config
    s = result.epoch_summary()
    sections = []
    settings = (
        f"dataset <code>{html.escape(str(c['dataset']))}</code>, sizes {'-'.join(map(str, c['sizes']))}, "
        f"{html.escape(c['activation'])} hidden units, {html.escape(c['cost'])} cost, η = {c['eta']:g}, "
        f"m = {c['batch_size']}, n = {c['n']}, {c['epochs']} epochs, seed {c['seed']}; "
        f"{result.steps_per_epoch} steps per epoch, recorded every {result.record_every} "
        f"({result.train_seconds:.2f} s training + {result.compile_seconds:.1f} s compiling)."
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    sections.append((None, f'<p class="note">{settings}</p>{notes}'))
    for k, lmbda in enumerate(result.lmbdas):
        if result.strength(k) == 0:
            continue
        body = "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in answer(result, k)) + "</ul>"
        body += "<pre>" + html.escape("\n".join(derivation(result, k))) + "</pre>"
        sections.append((f"{result.label(k)}: is L2 regularization an addition?", body))
    headers = ["model", "g away from 0", "|w| grew", "their share of Σw²", "mean |d|", "mean |g|", "|d| / |g|",
               "Σw²", "Σw² / Σw²(λ=0)"]
    rows = [[result.label(k), f"{100 * s['frac_away'][-1, k]:.1f}%", f"{100 * s['frac_grow'][-1, k]:.1f}%",
             f"{100 * s['grow_sq_share'][-1, k]:.1f}%", f"{s['mean_abs_decay'][-1, k]:.3g}",
             f"{s['mean_abs_data'][-1, k]:.3g}", f"{s['decay_to_data'][-1, k]:.3g}",
             f"{s['weight_sq_norm'][-1, k]:.4g}", f"{s['weight_sq_ratio'][-1, k]:.3g}"]
            for k, lm in enumerate(result.lmbdas)]
    per_layer = result.layer_summary()
    layer_rows = [[f"{lm:g}", str(li + 1), f"{100 * per_layer['frac_away'][li, k]:.1f}%",
                   f"{100 * per_layer['frac_grow'][li, k]:.1f}%", f"{per_layer['mean_abs_decay'][li, k]:.3g}",
                   f"{per_layer['mean_abs_data'][li, k]:.3g}"]
                  for k, lm in enumerate(result.lmbdas) for li in range(len(result.n_weights))]
    sections.append(("The last epoch, in numbers", table_html(headers, rows) + table_html(
        ["λ", "layer", "g away from 0", "|w| grew", "mean |d|", "mean |g|"], layer_rows)
        + '<p class="note">Means over the recorded steps of the last epoch. d = −(ηλ/n)·w is the decay term, '
          'g = −(η/m)·Σ_x ∂C0_x/∂w the data term; "away from 0" is sign(g) = sign(w).</p>'))
    main = len(result.lmbdas) - 1 if len(result.lmbdas) > 1 else None  # the last λ given
    if main is not None:
        sections.append(("Each weight against its two terms", figure_html(
            explain_terms_figure(result, main), "explain-terms",
            "Every weight (a sample of up to 4,000) at the last recorded step of a few epochs: its data term "
            "(blue toward zero, orange away) and its decay term (red line).")))
        sections.append(("Trajectories", figure_html(
            explain_trajectories_figure(result, main), "explain-trajectories",
            "Sampled weights at the recorded steps, from the same initial value and through the same mini-batches.")))
    sections.append(("Away from zero, per epoch", figure_html(
        explain_fractions_figure(result), "explain-fractions",
        "Share of weights whose data term pointed away from zero (solid) and whose |w| grew on net (dashed).")))
    if main is not None:
        sections.append(("Histograms", figure_html(
            explain_histograms_figure(result, main), "explain-histograms",
            "Left: final weights (log counts). Right: sizes of the two terms at the last recorded step.")))
    sections.append(("Σw² against λ = 0", figure_html(explain_norm_figure(result), "explain-norms",
                                                      "Σw² at the end of every epoch.")))
    return html_page(f"l2reg explain: {c['dataset']}", sections)


def convert_table(conversion) -> Table:
    """One row per convention: the value and its equation with numbers (caveats: :func:`convert_caveats`)."""
    inputs = ", ".join(f"{k} = {v:g}" for k, v in conversion.inputs.items() if v is not None)
    table = Table(title=f"l2reg convert: {conversion.value:g} as {conversion.source} is λ = {conversion.lmbda:.6g}"
                        + (f" ({inputs})" if inputs else ""), title_justify="left")
    table.add_column("convention", overflow="fold", ratio=4)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("equation", overflow="fold", ratio=3)
    for row in conversion.rows:
        value = f"{row['value']:.6g}" if row["value"] is not None else "needs " + " and ".join(
            x.split(" (")[0] for x in row["missing"])
        table.add_row(f"[bold]{row['key']}[/bold]: {row['setting']}", value, row["equation"])
    return table


def convert_caveats(conversion) -> Table:
    """The caveat of each convention, as a borderless two-column list."""
    table = Table(title="caveats", title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for row in conversion.rows:
        table.add_row(row["key"], row["caveat"])
    return table


# ---------------------------------------------------------------- reproduction (Nielsen, chapter 3)


def _mean_sd_text(stat, digits: int = 2) -> str:
    if stat is None:
        return "-"
    if stat["sd"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def reproduction_table(rep) -> Table:
    """Our final and peak test accuracy (%, mean ± sd over seeds) beside Nielsen's, per experiment and λ."""
    seeds = rep.config["seeds"]
    table = Table(title=f"Nielsen ch. 3: test accuracy (%), mean ± sd over {len(seeds)} seed(s)"
                        + (" [quick: not the real experiment]" if rep.config.get("quick") else ""),
                  title_justify="left")
    for name in ("n, epochs", "λ", "final", "Nielsen", "peak", "Nielsen", "time"):
        table.add_column(name, justify="left" if name == "n, epochs" else "right")
    for e in rep.experiments:
        for i, r in enumerate(e.rows):
            nf, npk = r["nielsen_final"], r["nielsen_peak"]
            table.add_row(
                f"{e.experiment.train_size:,}, {e.experiment.epochs}" if i == 0 else "", f"{r['lmbda']:g}",
                _mean_sd_text(r["final"]), "-" if nf is None else f"{nf:.2f}",
                _mean_sd_text(r["peak"]), "-" if npk is None else f"{npk:.2f}",
                f"{e.seconds:.0f} s" if i == 0 else "",
            )
        table.add_row("", "gain", _mean_sd_text(e.gain), f"{e.nielsen_gain:+.2f}", "", "", "", end_section=True)
    if rep.cv is not None:
        c = rep.cv
        table.add_row(f"CV λ, {len(c.sweep.cv.folds)} folds", f"{c.lmbda:g}", _mean_sd_text(c.test),
                      "", _mean_sd_text(c.peak), "", f"{c.seconds:.0f} s")
        table.add_row("CV − hand", "", _mean_sd_text(c.difference), "", "", "", "")
    return table


def reproduction_figure(exp_result):
    """Nielsen's overfitting figures for one experiment, λ = 0 against λ > 0 (mean ± sd band over seeds).

    Left: training cost C (penalty included) per epoch. Middle: test
    accuracy per epoch, Nielsen's final accuracies dotted. Right: training
    (dashed) against test (solid) accuracy per epoch.
    """
    plt = _pyplot()
    e = exp_result.experiment
    curves = exp_result.curves()
    epochs = np.arange(1, e.epochs + 1)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))

    def band(ax, data, color, label, ls="-", scale=1.0):
        m = scale * data.mean(axis=0)
        ax.plot(epochs, m, ls, color=color, lw=1.3, label=label)
        if data.shape[0] > 1:
            s = scale * data.std(axis=0, ddof=1)
            ax.fill_between(epochs, m - s, m + s, color=color, alpha=0.2, lw=0)

    for i, lm in enumerate(e.lmbdas):
        color = f"C{i}"
        band(axes[0], curves["training_cost"][i], color, f"λ = {lm:g}")
        band(axes[1], curves["evaluation_accuracy"][i], color, f"λ = {lm:g}", scale=100)
        final = e.nielsen[i][0]
        if final is not None:
            axes[1].axhline(final, color=color, ls=":", lw=1, label=f"Nielsen λ = {lm:g}: {final:.2f}%")
        band(axes[2], curves["training_accuracy"][i], color, f"training, λ = {lm:g}", ls="--", scale=100)
        band(axes[2], curves["evaluation_accuracy"][i], color, f"test, λ = {lm:g}", scale=100)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("training cost C = C0 + (λ/2n)·Σw²")
    axes[1].set_ylabel("test accuracy (%)")
    axes[2].set_ylabel("accuracy (%)")
    lo = min(100 * min(c.mean(axis=0)[len(epochs) // 10:].min() for c in curves["evaluation_accuracy"]), 100)
    axes[1].set_ylim(max(lo - 1, 0), None)
    for ax, title in zip(axes, ("Training cost", "Test accuracy", "Training against test accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    n_seeds = curves["evaluation_accuracy"][0].shape[0]
    fig.suptitle(f"Nielsen ch. 3: {e.title}, 784-30-10 ({n_seeds} seed(s); mean ± sd)", fontsize=11)
    fig.tight_layout()
    return fig
