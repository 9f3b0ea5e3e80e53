"""The train report's figures: learning curves and Σw² per epoch for every setting, and the final weights.

Runs that differ only by seed are averaged (see :func:`l2reg.present.explorer.run_groups`).
When the settings differ by λ alone, λ sets the colour: a legend for a few,
a colour scale for many (λ = 0 black).
"""

from __future__ import annotations

import numpy as np

from .explorer import best_setting, run_groups, train_curves
from .plots import (BEST, CHOSEN, LEGEND_MAX, WIDTH, ZERO, LmbdaColours, clipped_counts, curve, epoch_axis, hist_edges,
                    learning_panels, pyplot, step_hist, styled)


def _settings(result):
    """``(label, runs, λ or None, colour)`` per setting; ``colours`` (a :class:`LmbdaColours`) or None.

    Settings with a diverged run are left out: their values would set every scale.
    """
    groups = [(label, runs) for label, runs in run_groups(result)
              if not any(result.runs[j].get("diverged") for j in runs)]
    lm = [result.runs[runs[0]]["lmbda"] for _, runs in groups]
    by_lmbda = all(label.startswith("λ = ") for label, _ in groups) and all(
        not isinstance(x, (list, tuple)) for x in lm)
    if by_lmbda:
        colours = LmbdaColours(lm)
        return [(label, runs, x, colours(x)) for (label, runs), x in zip(groups, lm)], colours
    plt = pyplot()
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return [(label, runs, None, cmap(j % cmap.N)) for j, (label, runs) in enumerate(groups)], None


def _legend_or_scale(fig, axes, colours, n: int):
    if colours is not None and colours.scale:
        colours.colorbar(fig, axes[-1])
    else:
        fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside lower center",
                   ncol=min(n, 6), frameon=False)


@styled
def train_learning_curves_figure(result):
    """Training (dashed) against evaluation (solid) accuracy and cost per epoch, and their gap, per setting."""
    plt = pyplot()
    settings, colours = _settings(result)
    if not settings:
        return None
    reg = bool(result.config.get("regression"))
    series, c0 = [], True
    for label, runs, _, colour in settings:
        cur = train_curves(result, runs)
        if cur["training_cost"] is None or cur["evaluation_cost"] is None:
            return None  # not monitored
        c0 = c0 and cur["c0"]
        s = dict(label=label, color=colour, lw=1.5 if len(settings) > LEGEND_MAX else 2.0,
                 train_cost=cur["training_cost"], eval_cost=cur["evaluation_cost"])
        if not reg:
            if cur["training_accuracy"] is None or cur["evaluation_accuracy"] is None:
                return None
            s.update(train=cur["training_accuracy"], eval=cur["evaluation_accuracy"])
        series.append(s)
    fig = plt.figure(figsize=(WIDTH, 5.0))
    axes = learning_panels(fig, fig.add_gridspec(1, 1)[0], series, regression=reg,
                           eval_name=result.config["eval"],
                           cost_label="cost C0 (no penalty)" if c0 else "cost C (penalty included)")
    _legend_or_scale(fig, axes, colours, len(series))
    fig.suptitle(f"Learning curves, n = {result.config['n']}" + (
        f" (mean of {len(settings[0][1])} seeds)" if len(settings[0][1]) > 1 else ""))
    return fig


@styled
def train_weight_norm_figure(result):
    """Σw² per epoch for every setting (log scale)."""
    plt = pyplot()
    settings, colours = _settings(result)
    if not settings:
        return None
    fig, ax = plt.subplots(figsize=(WIDTH, 4.8))
    for label, runs, x, colour in settings:
        curve(ax, train_curves(result, runs)["weight_sq_norm"], color=colour, label=label,
              ls="--" if x == 0 else "-")
    ax.set_yscale("log")
    epoch_axis(ax)
    ax.set_ylabel("Σw²")
    ax.set_title("Σw² per epoch: the larger λ, the smaller the weights")
    if colours is not None and colours.scale:
        colours.colorbar(fig, ax)
    else:
        ax.legend(loc="best", ncol=2 if len(settings) > 6 else 1)
    return fig


def _histogram_picks(result, settings) -> list:
    """The smallest λ, the best λ > 0 on the evaluation set and the largest λ (each once): (label, runs, colour)."""
    order = list(range(len(settings)))
    if settings[0][2] is not None:
        order.sort(key=lambda j: settings[j][2])
    roles = {order[0]: ZERO, order[-1]: BEST}
    best = best_setting(result, [(label, runs) for label, runs, _, _ in settings])
    if best is not None:
        roles[best] = CHOSEN
    tag = f" (best {result.config['eval']}, λ > 0)"
    return [(settings[j][0] + (tag if j == best else ""), settings[j][1], roles[j])
            for j in sorted(roles, key=order.index)]


@styled
def train_weight_histogram_figure(result):
    """Final weights, one panel per layer: the smallest λ, the best on evaluation and the largest λ."""
    plt = pyplot()
    settings, _ = _settings(result)
    if not settings:
        return None
    picks = _histogram_picks(result, settings)
    n_layers = len(result.params[0])
    fig, axes = plt.subplots(1, n_layers, figsize=(WIDTH, 4.6), squeeze=False)
    # Σw² of all weight layers (the table's), mean over seeds: the one legend stands for every panel
    total = [sum(float(np.sum(np.square(result.params[j][li]["w"]))) for j in runs for li in range(n_layers)) / len(runs)
             for _, runs, _ in picks]
    for li, ax in enumerate(axes[0]):
        ws = [np.concatenate([np.ravel(result.params[j][li]["w"]) for j in runs]) for _, runs, _ in picks]
        edges = hist_edges(ws)
        beyond = 0
        for w, (label, runs, colour), sq in zip(ws, picks, total):
            counts, out = clipped_counts(w, edges)
            beyond = max(beyond, out)
            step_hist(ax, counts, edges, color=colour, label=f"{label}: Σw² = {sq:.4g} (all layers)")
        n_in, n_out = np.shape(result.params[0][li]["w"])
        ax.set_title(f"layer {li + 1} ({n_in}×{n_out} weights)")
        ax.set_xlabel("final weight" + (f" (≤ {beyond} beyond ±{edges[-1]:.2g} in the end bins)" if beyond else ""))
    axes[0][0].set_ylabel("count (log scale)")
    fig.legend(handles=axes[0][0].get_legend_handles_labels()[0], loc="outside lower center", ncol=len(picks),
               frameon=False)
    fig.suptitle("Final weights (biases excluded)")
    return fig
