"""The look shared by every report figure: style, palette, λ colour scale, λ = 0's own axis, histograms.

Figures are :data:`WIDTH` inches wide at 100 dpi, the width of the report's
content column, so a report read at 100 % zoom shows them at their natural
size: 11 pt text is 15 px on screen, and still 11 px in a 1000 px window.

Colours say which model a line belongs to, the line style which data set:
λ = 0 (or the smallest λ) is grey, the chosen λ red, the best λ > 0 blue;
training data dashed, held-out data solid. More than :data:`LEGEND_MAX`
values of λ get a colour scale with a colour bar instead of a legend.
"""

from __future__ import annotations

import functools

import numpy as np

WIDTH = 12.8  # inches; 1280 px at 100 dpi
STYLE = {
    "figure.dpi": 100, "savefig.dpi": 100, "figure.constrained_layout.use": True,
    "font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "figure.titlesize": 14,
    "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 11, "legend.framealpha": 0.85,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.8, "svg.fonttype": "none", "svg.hashsalt": "l2reg",
}
ZERO, CHOSEN, BEST, SELECTED = "#555555", "#d62728", "#1f77b4", "#6a3d9a"
TRAIN_LS, TEST_LS = "--", "-"
LEGEND_MAX = 4
#: Weights beyond the widest model's QUANTILE of |w| go into the end bins of a histogram.
QUANTILE = 0.995
BINS = 48


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def styled(draw):
    """Run a figure function under :data:`STYLE` (text sizes are fixed when the text is made)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        plt = pyplot()
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def lmbda_text(x) -> str:
    if isinstance(x, (list, tuple)):
        return ",".join(f"{v:.3g}" for v in x)
    return f"{x:.3g}"


# ---------------------------------------------------------------- many λ: a colour scale


class LmbdaColours:
    """Colour of each λ: a log colour scale over λ > 0 (viridis, its pale end cut off), λ = 0 black.

    ``scale`` is True when there are more than :data:`LEGEND_MAX` values: then
    :meth:`colorbar` explains the colours and no legend lists them.
    """

    def __init__(self, lmbdas):
        import matplotlib as mpl
        from matplotlib.colors import LinearSegmentedColormap, LogNorm

        self.lmbdas = [float(x) for x in lmbdas]
        pos = [x for x in self.lmbdas if x > 0]
        lo, hi = (min(pos), max(pos)) if pos else (1.0, 10.0)
        if hi <= lo:
            lo, hi = lo / 3, hi * 3
        self.norm = LogNorm(lo, hi)
        base = mpl.colormaps["viridis"]
        self.cmap = LinearSegmentedColormap.from_list("viridis_dark", base(np.linspace(0, 0.85, 256)))
        self.scale = len(set(self.lmbdas)) > LEGEND_MAX

    def __call__(self, x):
        return "black" if x <= 0 else self.cmap(self.norm(x))

    def colorbar(self, fig, ax, marks=None):
        """A colour bar for λ beside ``ax``; ``marks`` {λ: text} are drawn on it (e.g. the chosen λ)."""
        import matplotlib as mpl

        bar = fig.colorbar(mpl.cm.ScalarMappable(norm=self.norm, cmap=self.cmap), ax=ax, pad=0.01, aspect=30)
        bar.set_label("λ (log scale; λ = 0 black)")
        for x, text in (marks or {}).items():
            if x > 0:
                bar.ax.axhline(x, color=CHOSEN, lw=2.5)
                bar.ax.text(-0.15, x, text, color=CHOSEN, ha="right", va="center", fontsize=11,
                            transform=bar.ax.get_yaxis_transform())
        return bar


# ---------------------------------------------------------------- λ on a log axis, λ = 0 on its own


def path_axes(fig, cell, has_zero: bool):
    """``(ax0, ax)`` for quantities against λ: a log axis, and a narrow axis for λ = 0 (None without it)."""
    if not has_zero:
        ax = fig.add_subplot(cell)
        ax.set_xscale("log")
        ax.set_xlabel("λ (log scale)")
        _plain_lmbda_ticks(ax)
        return None, ax
    sub = cell.subgridspec(1, 2, width_ratios=[1, 12], wspace=0.0)
    ax0 = fig.add_subplot(sub[0])
    ax = fig.add_subplot(sub[1], sharey=ax0)
    ax.set_xscale("log")
    ax.set_xlabel("λ (log scale)")
    _plain_lmbda_ticks(ax)
    ax0.set_xlim(-1, 1)
    ax0.set_xticks([0], ["0"])
    ax0.spines["right"].set_visible(False)
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", which="both", left=False, labelleft=False)
    d = 0.02
    for a, xs in ((ax0, (1 - 6 * d, 1 + 6 * d)), (ax, (-0.5 * d, 0.5 * d))):
        kw = dict(transform=a.transAxes, color="k", clip_on=False, lw=1)
        a.plot(xs, (-d, d), **kw)
        a.plot(xs, (1 - d, 1 + d), **kw)
    return ax0, ax


def _plain_lmbda_ticks(ax):
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def epoch_axis(ax):
    """The x axis of a per-epoch plot: labelled, whole epochs only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def on_path(ax0, ax, lm, y, draw):
    """Call ``draw(axes, x, y, mask)`` on the λ = 0 axis for λ = 0 and on the log axis for λ > 0."""
    lm, y = np.asarray(lm, np.float64), np.asarray(y, np.float64)
    pos = lm > 0
    draw(ax, lm[pos], y[pos], pos)
    if pos.any():  # every λ of the grid in view, even where the values are missing (diverged)
        ax.set_xlim(lm[pos].min() / 1.6, lm[pos].max() * 1.6)
    if ax0 is not None and (~pos).any():
        draw(ax0, np.zeros(int((~pos).sum())), y[~pos], ~pos)


def path_vline(ax0, ax, x, **kw):
    """A vertical line at λ = x on whichever axis holds it."""
    if x > 0:
        ax.axvline(x, **kw)
    elif ax0 is not None:
        ax0.axvline(0, **kw)


# ---------------------------------------------------------------- histograms and curves


def hist_edges(arrays, bins: int = BINS, q: float = QUANTILE) -> np.ndarray:
    """Symmetric shared bins over ±(the largest per-model ``q``-quantile of |w|); non-finite values ignored."""
    finite = [np.abs(a[np.isfinite(a)]) for a in (np.ravel(x) for x in arrays)]
    lim = max((float(np.quantile(a, q)) for a in finite if a.size), default=0.0)
    if not lim > 0:
        lim = max((float(a.max()) for a in finite if a.size), default=0.0) or 1.0
    return np.linspace(-lim, lim, bins + 1)


def clipped_counts(w, edges) -> tuple[np.ndarray, int]:
    """Counts of ``w`` over ``edges``, values beyond counted in the end bins; and how many were beyond."""
    w = np.ravel(w)
    w = w[np.isfinite(w)]
    beyond = int(np.sum((w < edges[0]) | (w > edges[-1])))
    return np.histogram(np.clip(w, edges[0], edges[-1]), edges)[0], beyond


def step_hist(ax, counts, edges, **kw):
    """Counts as a step outline on a log count axis (empty bins drawn at 0.5, below the axis floor)."""
    c = np.asarray(counts, np.float64)
    ax.stairs(np.where(c > 0, c, 0.5), edges, baseline=0.5, lw=2, **kw)
    ax.set_yscale("log")
    top = max(float(c.max()) if c.size else 1.0, getattr(ax, "_l2reg_top", 1.0))
    ax._l2reg_top = top  # the tallest bin drawn on this axis so far
    ax.set_ylim(0.7, 1.8 * top)
    plain_log_axis(ax, "y")


def plain_log_axis(ax, which: str = "y"):
    """Tick labels of a log axis as plain numbers (0.2, 1, 50, 1000), not powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    subs = (1.0, 2.0, 5.0) if hi / max(lo, 1e-300) < 1e3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def smooth(values, window: int) -> np.ndarray:
    """Centred moving average over ``window`` epochs (shorter at the ends); NaN-free input."""
    v = np.asarray(values, np.float64)
    if window <= 1 or v.size < 3:
        return v
    c = np.concatenate([[0.0], np.cumsum(v)])
    half = window // 2
    lo = np.maximum(np.arange(v.size) - half, 0)
    hi = np.minimum(np.arange(v.size) + half + 1, v.size)
    return (c[hi] - c[lo]) / (hi - lo)


def accuracy_limits(curves, first: float = 0.1) -> tuple[float, float]:
    """y limits (%) for accuracy curves that show the train − test gap.

    From the lowest value after the first ``first`` share of the epochs (the
    early climb would squeeze the rest) to the highest, padded; at most 100.5.
    """
    vals = []
    for c in curves:
        c = np.asarray(c, np.float64)
        if c.size:
            vals.append(c[int(first * c.size):] if c.size > 3 else c)
    v = np.concatenate(vals) if vals else np.array([0.0, 100.0])
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 100.0
    lo, hi = float(v.min()), float(v.max())
    pad = max(0.12 * (hi - lo), 0.5)
    return max(lo - pad, 0.0), min(hi + pad, 100.5)


def epochs_axis(n: int) -> np.ndarray:
    return np.arange(1, n + 1)


def curve(ax, values, **kw):
    """One per-epoch curve; a single value (full-batch runs) is drawn as a marker."""
    v = np.asarray(values, np.float64)
    if v.size == 1:
        kw.setdefault("marker", "o")
    return ax.plot(epochs_axis(v.size), v, **kw)


def learning_panels(fig, cell, series, *, regression: bool, eval_name: str, cost_label: str = "cost C0 (no penalty)"):
    """Accuracy (train dashed, held-out solid), cost (log) and the gap per epoch, one colour per model.

    ``series``: dicts with ``label``, ``color``, ``train``/``eval`` (accuracy
    fractions, None for regression) and ``train_cost``/``eval_cost``. Regression
    gets the cost and the test − train cost gap only. The accuracy axis spans
    the models within :data:`FOCUS` points of the best (the others are named
    below it); the gap is drawn raw (thin) and as a moving average (thick).
    Returns the axes.
    """
    n = 2 if regression else 3
    sub = cell.subgridspec(1, n)
    axes = [fig.add_subplot(sub[i]) for i in range(n)]
    a_cost, a_gap = (axes[0], axes[1]) if regression else (axes[1], axes[2])
    epochs = max(np.size(s["train_cost"]) for s in series)
    window = max(1, int(round(epochs / 10)))
    for s in series:
        kw = dict(color=s["color"], lw=s.get("lw", 2.0))
        if not regression:
            curve(axes[0], 100 * np.asarray(s["train"]), ls=TRAIN_LS, **kw)
            curve(axes[0], 100 * np.asarray(s["eval"]), ls=TEST_LS, label=s["label"], **kw)
            gap = 100 * (np.asarray(s["train"]) - np.asarray(s["eval"]))
        else:
            gap = np.asarray(s["eval_cost"]) - np.asarray(s["train_cost"])
        curve(a_cost, s["train_cost"], ls=TRAIN_LS, **kw)
        curve(a_cost, s["eval_cost"], ls=TEST_LS, label=s["label"] if regression else None, **kw)
        if window > 1:
            curve(a_gap, gap, ls="-", color=s["color"], lw=0.8, alpha=0.35)
        curve(a_gap, smooth(gap, window), ls="-", **kw)
    if not regression:
        _accuracy_axis(axes[0], series, eval_name)
    a_cost.set_yscale("log")
    plain_log_axis(a_cost, "y")
    a_cost.set_ylabel(cost_label)
    a_cost.set_title(f"Cost: training dashed, {eval_name} solid")
    a_gap.axhline(0, color="k", lw=0.8)
    avg = f" ({window}-epoch average)" if window > 1 else ""
    if regression:
        a_gap.set_ylabel(f"{eval_name} − training cost")
        a_gap.set_title(f"Gap: {eval_name} − training cost{avg}")
    else:
        a_gap.set_ylabel("points")
        a_gap.set_title(f"Gap: training − {eval_name} accuracy{avg}")
    for a in axes:
        epoch_axis(a)
    return axes


FOCUS = 15.0  # points of accuracy below the best final held-out accuracy that the accuracy axis shows


def _accuracy_axis(ax, series, eval_name: str):
    finals = [float(np.asarray(s["eval"])[-1]) * 100 for s in series]
    best = np.nanmax(finals) if np.isfinite(finals).any() else 0.0
    keep = [s for s, f in zip(series, finals) if np.isfinite(f) and f >= best - FOCUS] or series
    ax.set_ylim(*accuracy_limits([100 * np.asarray(s[k]) for s in keep for k in ("train", "eval")]))
    shown = {id(s) for s in keep}
    hidden = [s["label"] for s in series if id(s) not in shown]
    if hidden:
        names = ", ".join(hidden[:3]) + (f" and {len(hidden) - 3} more" if len(hidden) > 3 else "")
        ax.text(0.02, 0.03, f"below the axis: {names}", transform=ax.transAxes, fontsize=11, color="#555555")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy: training dashed, {eval_name} solid")
