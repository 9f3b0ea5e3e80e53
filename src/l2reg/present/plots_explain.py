"""The explain report's figures: each term against the weight, summed over the run, trajectories, histograms.

One step moves a weight by d + g: the decay term d = −(ηλ/n)·w (coupled L2
under SGD; the rest of the actual update for other optimizers) and the data
term g = −(η/m)·Σ_x ∂C0_x/∂w. Per step d is tens of times smaller than g, so
it gets its own scale here; summed over the run (``result.cumulative``) the
two compare directly. In every figure a shaded area marks "toward zero".
"""

from __future__ import annotations

import numpy as np

from .plots import (CHOSEN, TRAIN_LS, WIDTH, ZERO, LmbdaColours, clipped_counts, epoch_axis, epochs_axis, hist_edges,
                    learning_panels, plain_log_axis, pyplot, step_hist, styled)

DECAY, TOWARD, AWAY = "#c51b7d", "#2c7fb8", "#f28e2b"
SHADE = "#e3f1e0"  # the quadrants where a term points toward zero


def model_colours(result) -> list:
    """λ = 0 grey; one λ red; several on the λ colour scale."""
    K = len(result.lmbdas)
    if K == 2:
        return [ZERO, CHOSEN]
    scale = LmbdaColours([result.strength(k) for k in range(K)])
    return [ZERO] + [scale(result.strength(k)) for k in range(1, K)]


def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _pooled(layers, k: int, *names) -> list[np.ndarray]:
    """Model k's arrays ``names`` of every layer, flattened and joined: ``(n_weights,)`` each."""
    return [np.concatenate([np.ravel(layer[name][:, k, :]) for layer in layers]) for name in names]


def _shade_toward_zero(ax, xlim: float, ylim: float):
    """Shade the quadrants where a term has the opposite sign of w: it points toward zero."""
    ax.fill_between([0, xlim], -ylim, 0, color=SHADE, lw=0, zorder=0)
    ax.fill_between([-xlim, 0], 0, ylim, color=SHADE, lw=0, zorder=0)
    ax.set_xlim(-xlim, xlim)
    ax.set_ylim(-ylim, ylim)
    ax.axhline(0, color="k", lw=0.6)
    ax.axvline(0, color="k", lw=0.6)


@styled
def explain_terms_figure(result, k: int, max_points: int = 4000):
    """Every weight against its data term g (top) and its decay term d (bottom, its own scale), at a few epochs."""
    from matplotlib.patches import Patch

    plt = pyplot()
    epochs = sorted(result.snapshots)
    fig, axes = plt.subplots(2, len(epochs), figsize=(WIDTH, 7.4), squeeze=False)
    for col, e in enumerate(epochs):
        w, d, g = _pooled(result.snapshots[e], k, "w", "d", "g")
        sel = _sample(w.size, max_points)
        w, d, g = w[sel], d[sel], g[sel]
        away = g * w > 0
        xlim = 1.05 * float(np.max(np.abs(w))) or 1.0
        top, bottom = axes[0][col], axes[1][col]
        _shade_toward_zero(top, xlim, 1.2 * (float(np.quantile(np.abs(g), 0.995)) or 1.0))
        top.scatter(w[~away], g[~away], s=6, alpha=0.45, color=TOWARD, lw=0)
        top.scatter(w[away], g[away], s=6, alpha=0.45, color=AWAY, lw=0)
        top.set_title(f"epoch {e + 1}: {100 * away.mean():.0f}% of g away from 0")
        _shade_toward_zero(bottom, xlim, 1.25 * (float(np.max(np.abs(d))) or 1e-12))
        bottom.scatter(w, d, s=6, color=DECAY, lw=0)
        bottom.set_xlabel("weight w")
        for a in (top, bottom):
            a.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    axes[0][0].set_ylabel("data term g of one step")
    axes[1][0].set_ylabel("decay term d of one step")
    handles = [Patch(color=SHADE, label="toward zero (sign opposite to w)"),
               plt.Line2D([], [], ls="", marker="o", color=TOWARD, label="g toward 0"),
               plt.Line2D([], [], ls="", marker="o", color=AWAY, label="g away from 0"),
               plt.Line2D([], [], ls="", marker="o", color=DECAY, label="d: always toward 0")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    # The table's statistic: mean |g| / mean |d| over the last epoch's recorded steps (1 / the table's |d|/|g|).
    ratio = 1 / float(result.epoch_summary()["decay_to_data"][-1, k]) if result.strength(k) > 0 else 0.0
    scale = (f"\n(bottom on its own scale: in the last epoch mean |g| = {ratio:.3g}× mean |d|, the table's |d|/|g| = "
             f"{1 / ratio:.3g})" if np.isfinite(ratio) and ratio > 0 else "")
    fig.suptitle(f"{result.label(k)}: one step. Top: the data term, either way. "
                 f"Bottom: the decay term, always toward 0{scale}")
    return fig


@styled
def explain_cumulative_figure(result, k: int, max_points: int = 4000):
    """Summed over the run, per weight: the decay term's total pull toward 0 against the data term's push.

    Needs ``result.cumulative`` (per layer ``w0``, ``decay`` = Σd, ``data`` = Σg
    over every step, each ``(n_in, K, n_out)``; w0 + Σd + Σg = the final
    weights); None when absent. Each weight is read along s, the side of zero
    it spent the run on: s = −sign(Σd) (under SGD Σd = −(ηλ/n)·Σ_t w_t, so s is
    the sign of its mean value). pull = −s·Σd = |Σd| and push = s·Σg (> 0:
    away from zero). Right: per step |g| ≫ |d|, but summed the data term
    cancels itself and the decay term does not (gross sizes from the
    recorded steps, :meth:`ExplainResult.epoch_summary`).
    """
    cum = getattr(result, "cumulative", None)
    if not cum:
        return None
    plt = pyplot()
    w0, dsum, gsum = _pooled(cum, k, "w0", "decay", "data")
    wf = w0 + dsum + gsum
    s = np.where(dsum != 0, -np.sign(dsum), np.where(wf < 0, -1.0, 1.0))
    push, pull = s * gsum, -s * dsum
    grew = np.abs(wf) > np.abs(w0)  # the same shares as result.run_summary(k), which the answer quotes
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(WIDTH, 5.4), width_ratios=[1.25, 1])
    sel = _sample(w0.size, max_points)
    for mask, colour, name in ((grew, AWAY, "|w| grew"), (~grew, TOWARD, "|w| shrank")):
        m = mask[sel]
        a1.scatter(push[sel][m], pull[sel][m], s=7, alpha=0.5, lw=0, color=colour,
                   label=f"{name} over the run ({100 * mask.mean():.0f}%)")
    lim = 1.05 * max(float(np.quantile(np.abs(push), 0.998)), float(np.quantile(pull, 0.998))) or 1.0
    a1.plot([0, lim], [0, lim], "k--", lw=1.2, label="pull = push")
    a1.axhline(0, color="k", lw=0.6)
    a1.axvline(0, color="k", lw=0.6)
    a1.set_xlim(min(-0.05 * lim, float(np.quantile(push, 0.002)) * 1.05), lim)
    a1.set_ylim(-0.03 * lim, 1.15 * float(np.quantile(pull, 0.998)) or lim)
    a1.set_xlabel("data term summed, s·Σg (> 0: pushed away from 0)")
    a1.set_ylabel("decay term summed, |Σd| (pull toward 0)")
    a1.set_title(f"Per weight: the decay's pull beat the data's push for {100 * (pull > push).mean():.0f}%")
    a1.legend(loc="upper left", markerscale=2.5)
    _gross_net_bars(a2, result, k, gsum, dsum)
    fig.suptitle(f"{result.label(k)}, summed over all {result.epochs} epochs ({result.epochs * result.steps_per_epoch} "
                 f"steps): a small pull that never changes sign adds up")
    return fig


def _gross_net_bars(ax, result, k: int, gsum, dsum):
    """Mean over weights of each term's gross size Σ|·| (from the recorded steps) and net size |Σ·|."""
    s = result.epoch_summary()
    steps = result.steps_per_epoch
    bars = [("data: Σ|g| (gross)", float(np.sum(s["mean_abs_data"][:, k]) * steps), TOWARD, 0.45),
            ("data: |Σg| (net)", float(np.mean(np.abs(gsum))), TOWARD, 1.0),
            ("decay: Σ|d| (gross)", float(np.sum(s["mean_abs_decay"][:, k]) * steps), DECAY, 0.45),
            ("decay: |Σd| (net)", float(np.mean(np.abs(dsum))), DECAY, 1.0)]
    y = np.arange(len(bars))[::-1]
    for yi, (name, v, colour, alpha) in zip(y, bars):
        ax.barh(yi, v, color=colour, alpha=alpha, height=0.6)
        ax.text(v, yi, f"  {v:.3g}", va="center", fontsize=12)
    ax.set_yticks(y, [b[0] for b in bars])
    ax.set_xscale("log")
    ax.set_xlim(min(b[1] for b in bars if b[1] > 0) / 3, max(b[1] for b in bars) * 6)
    plain_log_axis(ax, "x")
    ax.set_xlabel("mean over weights (log scale)")
    kept_g = bars[1][1] / bars[0][1] if bars[0][1] else float("nan")
    kept_d = bars[3][1] / bars[2][1] if bars[2][1] else float("nan")
    ax.set_title(f"Summed, the data term keeps {100 * kept_g:.0f}% of its size, the decay {100 * kept_d:.0f}%")
    ax.grid(axis="y", visible=False)


@styled
def explain_learning_curves_figure(result):
    """Training against held-out accuracy and cost C0 per epoch for each λ, and their gap."""
    plt = pyplot()
    h, reg = result.history, bool(result.config.get("regression"))
    if "training_cost" not in h or "evaluation_cost" not in h:
        return None
    from .explorer import _c0

    series = []
    for k, colour in enumerate(model_colours(result)):
        s = dict(label=result.label(k), color=colour, train_cost=_c0(h, "training_cost", k),
                 eval_cost=_c0(h, "evaluation_cost", k))
        if not reg:
            s.update(train=h["training_accuracy"][:, k], eval=h["evaluation_accuracy"][:, k])
        series.append(s)
    fig = plt.figure(figsize=(WIDTH, 4.8))
    axes = learning_panels(fig, fig.add_gridspec(1, 1)[0], series, regression=reg, eval_name=result.config["eval"])
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center", ncol=len(series),
               frameon=False)
    fig.suptitle("Learning curves from the same initial weights and mini-batches")
    return fig


@styled
def explain_trajectories_figure(result, k: int):
    """Sampled weights over training, under λ = 0 (dashed) and under λ (solid), from the same start."""
    plt = pyplot()
    layers = sorted(set(result.tracked_index[:, 0].tolist()))
    fig, axes = plt.subplots(1, max(len(layers), 1), figsize=(WIDTH, 4.8), squeeze=False)
    x = (result.steps + 1) / result.steps_per_epoch
    for a, layer in zip(axes[0], layers):
        rows = np.flatnonzero(result.tracked_index[:, 0] == layer)
        for c, t in enumerate(rows):
            _, i, o = result.tracked_index[t]
            a.plot(x, result.tracked[:, t, 0], TRAIN_LS, color=f"C{c}", lw=1.3)
            a.plot(x, result.tracked[:, t, k], "-", color=f"C{c}", lw=2, label=f"w[{i},{o}]")
        a.axhline(0, color="k", lw=0.6)
        epoch_axis(a)
        a.set_title(f"layer {layer + 1}")
        a.legend(loc="best", ncol=2)
    axes[0][0].set_ylabel("weight")
    fig.suptitle(f"Sampled weights from the same start: solid {result.label(k)}, dashed {result.label(0)}")
    return fig


@styled
def explain_fractions_figure(result):
    """Per epoch: the share of weights whose data term pointed away from zero, and whose |w| grew."""
    plt = pyplot()
    s = result.epoch_summary()
    x = epochs_axis(result.epochs)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.6))
    for k, colour in enumerate(model_colours(result)):
        ax.plot(x, 100 * s["frac_away"][:, k], "-", color=colour, marker="o", ms=4,
                label=f"{result.label(k)}: g away from 0")
        ax.plot(x, 100 * s["frac_grow"][:, k], TRAIN_LS, color=colour, label=f"{result.label(k)}: |w| grew on net")
    epoch_axis(ax)
    ax.set_ylabel("% of weights (mean over recorded steps)")
    ax.set_title("Per epoch, mean over its recorded steps: share of weights whose data term pointed away from 0 "
                 "(solid) and whose |w| grew on net in a step (dashed)")
    ax.legend(loc="best", ncol=2)
    return fig


@styled
def explain_histograms_figure(result, k: int):
    """Final weights under λ = 0 and λ (clipped range, log counts); sizes of the two terms at the last snapshot."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(WIDTH, 4.6))
    colours = model_colours(result)
    ws = [_pooled(result.final_params, j, "w")[0] for j in (0, k)]
    edges = hist_edges(ws)
    beyond = 0
    for w, j in zip(ws, (0, k)):
        counts, out = clipped_counts(w, edges)
        beyond = max(beyond, out)
        step_hist(a1, counts, edges, color=colours[j], label=f"{result.label(j)}: Σw² = {float(np.sum(w * w)):.4g}")
    a1.set_xlabel("final weight" + (f" ({beyond} beyond ±{edges[-1]:.2g}: in the end bins)" if beyond else ""))
    a1.set_ylabel("count (log scale)")
    a1.set_title("Final weights")
    a1.legend(loc="upper left")
    g, d = (np.abs(x) for x in _pooled(result.snapshots[max(result.snapshots)], k, "g", "d"))
    # Zero terms (weights of inputs that are always 0 get no data term) have no logarithm: counted in the legend.
    lg, ld = np.log10(g[g > 0]), np.log10(d[d > 0])
    both = np.concatenate([lg, ld])
    if both.size:
        bins = np.linspace(np.quantile(both, 0.002), both.max(), 50)
        for v, colour, name, zero in ((lg, TOWARD, "|data term g|", g), (ld, DECAY, "|decay term d|", d)):
            counts, _ = clipped_counts(v, bins)
            step_hist(a2, counts, bins, color=colour, label=f"{name} ({int((zero == 0).sum())} are 0)")
    a2.set_xlabel("log10 of the term's size, last recorded step")
    a2.set_title(f"{result.label(k)}: the two terms of one step")
    a2.legend(loc="upper left")
    return fig


@styled
def explain_norm_figure(result):
    """Σw² per epoch for every λ, the λ = 0 companion included."""
    plt = pyplot()
    sq = result.history["weight_sq_norm"]
    x = epochs_axis(result.epochs)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.4))
    for k, colour in enumerate(model_colours(result)):
        ax.plot(x, sq[:, k], color=colour, lw=2.2,
                label=f"{result.label(k)}: {sq[-1, k]:.4g}"
                + (f" ({sq[-1, k] / sq[-1, 0]:.2f}× {result.label(0)})" if k else ""))
    epoch_axis(ax)
    ax.set_ylabel("Σw² (end of epoch)")
    ax.set_title("Σw² per epoch, from the same initial weights")
    ax.legend(loc="best")
    return fig
