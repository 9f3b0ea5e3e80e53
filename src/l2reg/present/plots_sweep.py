"""The sweep report's figures: the path, what L2 did along it, learning curves, Σw², weights, the two terms.

Every figure compares the chosen λ with λ = 0 (the smallest λ of the grid
when 0 is absent) and with the best λ > 0 by cross-validation, in the colours
of :mod:`l2reg.present.plots`. Curves and weights come from the models refit on the
whole training set; a λ that was not refit falls back to the best refit λ > 0.
"""

from __future__ import annotations

import numpy as np

from .plots import (BEST, CHOSEN, TRAIN_LS, WIDTH, ZERO, LmbdaColours, clipped_counts, epoch_axis, epochs_axis,
                    hist_edges, learning_panels, lmbda_text, on_path, path_axes, path_vline, plain_log_axis, pyplot,
                    step_hist, styled)

DECAY, DATA = "#c51b7d", "#2c7fb8"


# ---------------------------------------------------------------- which λ to compare


def _score(result, i) -> float:
    """The CV score of row i, larger is better (minus the cost for regression); diverged: −inf."""
    r = result.rows[i]
    if r.get("diverged"):
        return -np.inf
    return -r["cv_cost_mean"] if result.regression else r["cv_accuracy_mean"]


def refit_of(result, i) -> int | None:
    """Index into ``refit_lmbdas`` of row i, or None when that (η, λ) was not refit."""
    r = result.rows[i]
    if r["eta"] != result.chosen_eta or r["lmbda"] not in result.refit_lmbdas:
        return None
    return result.refit_lmbdas.index(r["lmbda"])


def best_positive(result, *, refit_only: bool = False) -> int | None:
    """Row of the best CV score among λ > 0 at the chosen η (ties: the larger λ), or None."""
    rows = [i for i in result.rows_at_chosen_eta() if result.rows[i]["lmbda"] > 0
            and np.isfinite(_score(result, i)) and (not refit_only or refit_of(result, i) is not None)]
    if not rows:
        return None
    return max(rows, key=lambda i: (_score(result, i), result.rows[i]["lmbda"]))


def compare_picks(result, *, refit: bool = False) -> list[dict]:
    """λ = 0 (or the smallest λ), the chosen λ and the best λ > 0, each once.

    Each pick: ``row``, ``lmbda``, ``label``, ``color`` and ``refit`` (index
    into the refit models or None). ``refit=True`` keeps only refit models,
    the best λ > 0 falling back to the best refit one.
    """
    b, c, sel = result.baseline_index, result.chosen_index, result.config["select"]
    lm = lambda i: lmbda_text(result.rows[i]["lmbda"])  # noqa: E731
    base = "λ = 0" if result.rows[b]["lmbda"] == 0 else f"λ = {lm(b)} (smallest)"
    picks = [dict(row=b, label=base + (f" (chosen, {sel})" if c == b else ""), color=ZERO)]
    if c != b:
        picks.append(dict(row=c, label=f"λ = {lm(c)} (chosen, {sel})", color=CHOSEN))
    best = best_positive(result)
    if refit and best is not None and refit_of(result, best) is None:
        best = best_positive(result, refit_only=True)
        tail = "best refit λ > 0"
    else:
        tail = "best CV, λ > 0"
    if best is not None and best not in (b, c):
        picks.append(dict(row=best, label=f"λ = {lm(best)} ({tail})", color=BEST))
    for p in picks:
        p["lmbda"], p["refit"] = result.rows[p["row"]]["lmbda"], refit_of(result, p["row"])
    return [p for p in picks if p["refit"] is not None] if refit else picks


def _eta_note(result) -> str:
    return f" (η = {result.chosen_eta:g})" if len(result.etas) > 1 else ""


# ---------------------------------------------------------------- the path


def _path_arrays(result) -> dict:
    """Per λ at the chosen η: CV mean and SE, fold-model and refit train/test scores (% or C0), Σw²."""
    at = result.rows_at_chosen_eta()
    rows = [result.rows[i] for i in at]
    key, scale = ("cost", 1.0) if result.regression else ("accuracy", 100.0)
    f = result.cv.final
    refit = np.array([refit_of(result, i) is not None for i in at])
    bad = np.array([bool(r.get("diverged")) for r in rows])  # drawn as gaps: their values would set the scale
    nan = lambda a: np.where(bad, np.nan, np.asarray(a, np.float64))  # noqa: E731
    return dict(
        at=at, lm=np.array([r["lmbda"] for r in rows]), refit=refit,
        cv=nan(scale * np.array([r[f"cv_{key}_mean"] for r in rows], np.float64)),
        se=nan(scale * np.array([r[f"cv_{key}_se"] for r in rows], np.float64)),
        train_folds=nan(scale * f[f"training_{key}"][at].mean(axis=1)),
        test_folds=nan(scale * f[f"test_{key}"][at].mean(axis=1)),
        train=nan(scale * np.array([r[f"training_{key}"] for r in rows], np.float64)),
        test=nan(scale * np.array([r[f"test_{key}"] for r in rows], np.float64)),
        sq_folds=nan(f["weight_sq_norm"][at].mean(axis=1)), sq=nan([r["weight_sq_norm"] for r in rows]),
    )


def _choice_lines(result, ax0, ax):
    from matplotlib.lines import Line2D

    sel = result.config["select"]
    path_vline(ax0, ax, result.chosen_lmbda, color=CHOSEN, lw=2)
    handles = [Line2D([], [], color=CHOSEN, lw=2, label=f"chosen λ = {lmbda_text(result.chosen_lmbda)} ({sel})")]
    m = result.rows[result.min_index]
    if result.min_index != result.chosen_index and m["eta"] == result.chosen_eta:
        path_vline(ax0, ax, m["lmbda"], color=CHOSEN, lw=1.5, ls=":")
        handles.append(Line2D([], [], color=CHOSEN, lw=1.5, ls=":", label=f"best mean λ = {lmbda_text(m['lmbda'])}"))
    return handles


@styled
def sweep_path_figure(result):
    """CV score ± SE against λ (log axis; λ = 0 on its own short axis), training and test, chosen λ marked."""
    plt = pyplot()
    p = _path_arrays(result)
    k = result.config["folds"]
    fig = plt.figure(figsize=(WIDTH, 5.4))
    ax0, ax = path_axes(fig, fig.add_gridspec(1, 1)[0], bool(p["lm"][0] == 0 and len(p["lm"]) > 1))

    def draw(a, x, _, mask):
        a.errorbar(x, p["cv"][mask], yerr=p["se"][mask], fmt="o-", color="#333333", capsize=4, ms=6, lw=2.2,
                   label=f"{k}-fold cross-validation (mean ± SE)")
        a.plot(x, p["train_folds"][mask], TRAIN_LS, color="#ff7f0e", lw=1.5, label="training, fold models")
        a.plot(x, p["test_folds"][mask], TRAIN_LS, color="#2ca02c", lw=1.5, label="test, fold models")
        r = p["refit"][mask]
        a.plot(x[r], p["train"][mask][r], "s", color="#ff7f0e", ms=8, label="training, refit on all n")
        a.plot(x[r], p["test"][mask][r], "D", color="#2ca02c", ms=8, label="test, refit on all n")

    on_path(ax0, ax, p["lm"], p["cv"], draw)
    handles = _choice_lines(result, ax0, ax)
    (ax0 or ax).set_ylabel("validation C0 (lower is better)" if result.regression else "accuracy (%)")
    h, _ = ax.get_legend_handles_labels()
    fig.legend(handles=h + handles, loc="outside lower center", ncol=4, frameon=False)
    fig.suptitle(f"The regularization path{_eta_note(result)}: cross-validation chose λ = "
                 f"{lmbda_text(result.chosen_lmbda)}; the test set played no part")
    return fig


@styled
def sweep_gap_figure(result):
    """What L2 did along the path: the train − test gap and Σw² of the final weights against λ."""
    plt = pyplot()
    p = _path_arrays(result)
    fig = plt.figure(figsize=(WIDTH, 4.8))
    cells = fig.add_gridspec(1, 2)
    has_zero = bool(p["lm"][0] == 0 and len(p["lm"]) > 1)
    gap_folds = p["test_folds"] - p["train_folds"] if result.regression else p["train_folds"] - p["test_folds"]
    gap = p["test"] - p["train"] if result.regression else p["train"] - p["test"]
    panels = ((gap_folds, gap, False, "test − training C0" if result.regression else "training − test (points)",
               "The generalization gap"),
              (p["sq_folds"], p["sq"], True, "Σw² (final weights)", "Σw²: larger λ, smaller weights"))
    for cell, (folds, refit, log, ylabel, title) in zip(cells, panels):
        ax0, ax = path_axes(fig, cell, has_zero)

        def draw(a, x, _, mask, folds=folds, refit=refit):
            a.plot(x, folds[mask], "o" + TRAIN_LS, color="#777777", ms=4, lw=1.5, label="mean of the fold models")
            r = p["refit"][mask]
            a.plot(x[r], refit[mask][r], "D", color="#333333", ms=8, label="refit on all n")

        on_path(ax0, ax, p["lm"], folds, draw)
        _choice_lines(result, ax0, ax)
        if log:
            ax.set_yscale("log")
            plain_log_axis(ax, "y")
        else:
            (ax0 or ax).axhline(0, color="k", lw=0.8)
            ax.axhline(0, color="k", lw=0.8)
        (ax0 or ax).set_ylabel(ylabel)
        ax.set_title(title)
    ax.legend(loc="upper right")
    fig.suptitle(f"Along the path{_eta_note(result)}: the generalization gap and the size of the weights "
                 f"against λ (red: the chosen λ)")
    return fig


# ---------------------------------------------------------------- per epoch


@styled
def sweep_learning_curves_figure(result):
    """Training against test accuracy and C0 per epoch, and their gap, for λ = 0, the chosen and the best λ > 0."""
    plt = pyplot()
    h = result.refit_history
    series = []
    for p in compare_picks(result, refit=True):
        r = p["refit"]
        s = dict(label=p["label"], color=p["color"], lw=2.6 if p["color"] == CHOSEN else 2.0,
                 train_cost=h["training_cost"][:, r], eval_cost=h["test_cost"][:, r])
        if not result.regression:
            s.update(train=h["training_accuracy"][:, r], eval=h["test_accuracy"][:, r])
        series.append(s)
    fig = plt.figure(figsize=(WIDTH, 4.8))
    axes = learning_panels(fig, fig.add_gridspec(1, 1)[0], series, regression=result.regression, eval_name="test")
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center", ncol=len(series),
               frameon=False)
    fig.suptitle(f"Learning curves of the models refit on all n = {result.config['n']}{_eta_note(result)}")
    return fig


@styled
def sweep_weight_norm_figure(result):
    """Σw² per epoch for every λ (mean over the folds), coloured by λ on a log scale."""
    plt = pyplot()
    at = result.rows_at_chosen_eta()
    sq = result.cv.history["weight_sq_norm"][:, at].mean(axis=2)  # (epochs, L)
    keep = [j for j, i in enumerate(at) if not result.rows[i].get("diverged")]  # a diverged λ would set the scale
    sq, at = sq[:, keep], [at[j] for j in keep]
    lm = [result.rows[i]["lmbda"] for i in at]
    chosen = at.index(result.chosen_index)
    colours = LmbdaColours(lm)
    fig, ax = plt.subplots(figsize=(WIDTH, 5.0))
    epochs = epochs_axis(sq.shape[0])
    zero = []
    for j, x in enumerate(lm):
        if j == chosen:
            ax.plot(epochs, sq[:, j], color=CHOSEN, lw=8, alpha=0.35, zorder=2, solid_capstyle="butt")
        line, = ax.plot(epochs, sq[:, j], color=colours(x), lw=2.4 if j == chosen else 1.6, zorder=3,
                        ls="--" if x == 0 else "-",
                        label=f"λ = {lmbda_text(x)}" + (" (chosen)" if j == chosen else ""))
        zero += [line] if x == 0 else []
    ax.set_yscale("log")
    plain_log_axis(ax, "y")
    epoch_axis(ax)
    ax.set_ylabel("Σw² (mean over the folds)")
    ax.set_title(f"Σw² per epoch{_eta_note(result)}: the larger λ, the harder the pull toward zero "
                 f"(chosen λ: red halo)")
    if colours.scale:
        colours.colorbar(fig, ax, {result.chosen_lmbda: "chosen"})
        if zero:
            ax.legend(handles=zero, loc="lower left")
    else:
        ax.legend(loc="lower left")
    return fig


# ---------------------------------------------------------------- the final weights and the two terms


@styled
def sweep_weight_histogram_figure(result):
    """Final weights of the refit models, one panel per layer: counts on a log axis, range clipped."""
    plt = pyplot()
    picks = compare_picks(result, refit=True)
    n_layers = len(result.refit_params[0])
    fig, axes = plt.subplots(1, n_layers, figsize=(WIDTH, 4.6), squeeze=False)
    # Σw² of all weight layers (the table's): the one legend stands for every panel
    total = [sum(float(np.sum(np.square(result.refit_params[p["refit"]][li]["w"]))) for li in range(n_layers))
             for p in picks]
    for li, ax in enumerate(axes[0]):
        ws = [np.ravel(result.refit_params[p["refit"]][li]["w"]) for p in picks]
        edges = hist_edges(ws)
        beyond = 0
        for w, p, sq in zip(ws, picks, total):
            counts, out = clipped_counts(w, edges)
            beyond = max(beyond, out)
            step_hist(ax, counts, edges, color=p["color"], label=f"{p['label']}: Σw² = {sq:.4g} (all layers)")
        n_in, n_out = np.shape(result.refit_params[0][li]["w"])
        ax.set_title(f"layer {li + 1} ({n_in}×{n_out} weights)")
        ax.set_xlabel("final weight" + (f" (≤ {beyond} beyond ±{edges[-1]:.2g} in the end bins)" if beyond else ""))
    axes[0][0].set_ylabel("count (log scale)")
    fig.legend(handles=axes[0][0].get_legend_handles_labels()[0], loc="outside lower center", ncol=len(picks),
               frameon=False)
    fig.suptitle(f"Final weights of the models refit on all n = {result.config['n']}: L2 narrows the distribution")
    return fig


@styled
def sweep_terms_figure(result):
    """The decay and data terms at the final weights of each refit λ: mean |d|, mean |g|, share pushed away.

    Needs ``result.refit_terms`` (name -> (R,) over ``refit_lmbdas``:
    ``mean_abs_decay`` = mean |d|, d = −(ηλ/n)·w; ``mean_abs_data`` = mean |g|,
    g = −η·∂C0/∂w on the whole training set; ``frac_away``, the share with
    g·w > 0). None when absent.
    """
    terms = getattr(result, "refit_terms", None)
    if not terms:
        return None
    plt = pyplot()
    lm = np.asarray(result.refit_lmbdas, np.float64)
    row = {result.rows[i]["lmbda"]: result.rows[i] for i in result.rows_at_chosen_eta()}
    bad = np.array([bool(row[x].get("diverged")) if x in row else False for x in result.refit_lmbdas])
    nan = lambda a: np.where(bad, np.nan, np.asarray(a, np.float64))  # noqa: E731  (diverged: left out)
    fig = plt.figure(figsize=(WIDTH, 4.8))
    cells = fig.add_gridspec(1, 2)
    has_zero = bool(lm.min() == 0 and lm.size > 1)
    ax0, ax = path_axes(fig, cells[0], has_zero)
    d, g = nan(terms["mean_abs_decay"]), nan(terms["mean_abs_data"])

    def draw(a, x, _, mask):
        pos = d[mask] > 0
        a.plot(x[pos], d[mask][pos], "o-", color=DECAY, ms=7, label="mean |d|, decay: always toward 0")
        a.plot(x, g[mask], "s-", color=DATA, ms=7, label="mean |g|, data: either way")

    on_path(ax0, ax, lm, g, draw)
    ax.set_yscale("log")
    _choice_lines(result, ax0, ax)
    (ax0 or ax).set_ylabel("size of one full-batch step")
    ax.set_title("The two terms at the final weights")
    ax.legend(loc="lower right")
    bx0, bx = path_axes(fig, cells[1], has_zero)
    away = 100 * nan(terms["frac_away"])
    on_path(bx0, bx, lm, away, lambda a, x, y, m: a.plot(x, y, "o-", color=DATA, ms=7))
    _choice_lines(result, bx0, bx)
    (bx0 or bx).set_ylabel("% of weights with g·w > 0")
    bx.set_title("Share of weights the data term pushes away from 0 (at the final weights)")
    fig.suptitle("At the end of training: the larger λ, the larger the decay term, and the more weights the data "
                 f"term pushes back out (η = {result.chosen_eta:g}, n = {result.config['n']})")
    return fig


@styled
def sweep_heatmap_figure(result):
    """Mean CV accuracy (cost for regression) over (η, λ); diverged pairs blank, the chosen pair boxed."""
    plt = pyplot()
    etas, reg = result.etas, result.regression
    E = len(etas)
    L = len(result.rows) // E
    key, scale = ("cv_cost_mean", 1.0) if reg else ("cv_accuracy_mean", 100.0)
    grid = np.array([np.nan if r.get("diverged") else scale * r[key] for r in result.rows]).reshape(E, L)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.8 + 0.62 * E))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r" if reg else "viridis", aspect="auto", origin="lower")
    fig.colorbar(im, ax=ax, pad=0.01, label="mean CV C0" if reg else "mean CV accuracy (%)")
    for e in range(E):
        for j in range(L):
            v = grid[e, j]
            if np.isnan(v):
                ax.text(j, e, "diverged", ha="center", va="center", fontsize=11, color="#444444")
                continue
            r, g, b, _ = im.cmap(im.norm(v))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, e, f"{v:.3g}" if reg else f"{v:.1f}", ha="center", va="center", fontsize=12, color=ink,
                    fontweight="bold" if e * L + j == result.chosen_index else "normal")
    ce, cl = divmod(result.chosen_index, L)
    ax.add_patch(plt.Rectangle((cl - 0.5, ce - 0.5), 1, 1, fill=False, ec=CHOSEN, lw=3.5))
    if result.min_index != result.chosen_index:
        me, ml = divmod(result.min_index, L)
        ax.add_patch(plt.Rectangle((ml - 0.5, me - 0.5), 1, 1, fill=False, ec=CHOSEN, lw=2, ls=":"))
    ax.set_xticks(range(L), [lmbda_text(result.rows[j]["lmbda"]) for j in range(L)])
    ax.set_yticks(range(E), [f"{x:g}" for x in etas])
    ax.grid(False)
    ax.set_xlabel("λ")
    ax.set_ylabel("η")
    ax.set_title(f"Mean CV {'C0' if reg else 'accuracy'} over (η, λ): chosen pair boxed in red "
                 f"({result.config['select']}), best mean dotted")
    return fig
