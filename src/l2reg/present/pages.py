"""The HTML reports of train, sweep and explain, and their figures as files.

Each report is one self-contained page: inline CSS, figures as base64 PNG,
the λ explorer's data as a JSON block and its plain JavaScript inline. It
loads nothing (no address of any kind appears in it), so it opens offline and
can be mailed as one file. The figures are drawn at the width of the content
column (:data:`l2reg.present.plots.WIDTH`), readable at 100 % zoom.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

from ..base import helper, store
from ..base import validation as V
from ..options import FIGURE_FORMATS as FORMATS
from . import explorer, plots_explain, plots_sweep, plots_train
from .plots import STYLE, pyplot
from .words import grid_symbol, in_grid_words

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1300px; margin: 1.5em auto;
       padding: 0 1.2em; color: #222; line-height: 1.45; font-size: 16px; }
h1 { font-size: 1.7em; } h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.95em; margin: 1em 0; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f5f5f5; } tr.chosen td { font-weight: bold; background: #fff7e0; }
td.dim { color: #777; } figure { margin: 1em 0; } figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.95em; color: #555; } .note { color: #555; font-size: 0.95em; }
code { background: #f4f4f4; padding: 0 0.2em; } pre { overflow-x: auto; font-size: 0.92em; }
.explorer { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; background: #fcfcfd; }
.explorer .controls { display: flex; align-items: flex-start; gap: 1em; }
.explorer .controls label { font-size: 1.4em; font-weight: bold; line-height: 1.2; }
.explorer .track { flex: 1; } .explorer input[type=range] { width: 100%; margin: 0.4em 0 0.1em; }
.explorer .ticks { display: flex; justify-content: space-between; font-size: 13px; color: #555; }
.explorer output { min-width: 16em; font-size: 1.2em; font-weight: bold; color: #6a3d9a; }
.explorer .readout { display: flex; flex-wrap: wrap; gap: 0.4em 1.6em; margin: 0.4em 0 0.8em; }
.explorer .cell { display: flex; flex-direction: column; } .explorer .cell .k { font-size: 13px; color: #666; }
.explorer .cell .v { font-size: 1.15em; font-variant-numeric: tabular-nums; }
.explorer .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 0.6em 1.2em; }
.explorer svg { width: 100%; height: auto; background: #fff; border: 1px solid #eee; }
.explorer svg text { font-size: 13px; fill: #333; } .explorer svg text.title { font-size: 15px; font-weight: bold; }
.explorer svg text.legend { font-size: 13px; } .explorer svg text.mark { fill: #d62728; font-size: 13px; }
.explorer svg text.missing { fill: #888; font-size: 15px; } .explorer svg .grid { stroke: #e8e8e8; }
.explorer svg .axis { stroke: #888; } .explorer svg .pick { cursor: pointer; }
"""


def html_page(title: str, sections) -> str:
    """A complete, self-contained HTML page.

    ``sections`` is a sequence of ``(heading, body_html)`` pairs; a ``None``
    heading puts the body directly under the title. Bodies are trusted HTML
    (build them with :func:`figure_html`, :func:`table_html` and
    ``html.escape``).
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, body in sections:
        if heading:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(body)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def figure_bytes(fig, fmt: str = "png", dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG or SVG bytes, without a date or software stamp (closes the figure)."""
    import io

    plt = pyplot()
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    with plt.rc_context(STYLE):
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return buf.getvalue()


def figure_png(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (closes the figure)."""
    return figure_bytes(fig, "png", dpi)


def figure_html(fig, fig_id: str, caption: str = "") -> str:
    """A ``<figure>`` holding ``fig`` as an inline base64 PNG."""
    return png_figure_html(figure_png(fig), fig_id, caption)


def png_figure_html(png: bytes, fig_id: str, caption: str = "") -> str:
    """A ``<figure>`` holding the PNG bytes ``png``, inline as base64."""
    import base64

    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'<figure id="{html.escape(fig_id)}"><img alt="{html.escape(caption or fig_id)}" '
            f'src="data:image/png;base64,{data}">{cap}</figure>')


def table_html(headers, rows, row_classes=None, cell_classes=None) -> str:
    """A plain HTML table; cells are escaped."""
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


# ---------------------------------------------------------------- the figures of each report

Figure = tuple[str, str, str, Callable]  # (id, heading, caption, draw() -> matplotlib figure or None)


def sweep_figures(result) -> list[Figure]:
    """The sweep report's figures, in page order."""
    sel = result.config["select"]
    out = []
    if len(result.etas) > 1:
        out.append(("sweep-heatmap", "Learning rate × λ", "Mean cross-validation score of every (η, λ) pair; "
                    "diverged cells are marked and ignored by the selection. The figures below are at the chosen η.",
                    lambda: plots_sweep.sweep_heatmap_figure(result)))
    out += [
        ("sweep-path", "Cross-validation path",
         f"Mean validation score ± standard error over the folds against λ; training and test scores of the fold "
         f"models (dashed) and of the refit models (markers). Red: the chosen λ ({sel}).",
         lambda: plots_sweep.sweep_path_figure(result)),
        ("sweep-gap", "What L2 did along the path",
         "The train − test gap and Σw² of the final weights against λ: refit models (diamonds) and the mean of "
         "the fold models (dashed).", lambda: plots_sweep.sweep_gap_figure(result)),
        ("sweep-learning-curves", "Learning curves",
         "Training (dashed) against test (solid) accuracy and cost per epoch, and their gap, for λ = 0, the "
         "chosen λ and the best λ > 0 (Nielsen, chapter 3).", lambda: plots_sweep.sweep_learning_curves_figure(result)),
        ("sweep-weight-norms", "Σw² per epoch", "Σw² per epoch for each λ, mean over the folds; colour = λ.",
         lambda: plots_sweep.sweep_weight_norm_figure(result)),
        ("sweep-weight-histograms", "Final weights",
         "Histograms of the final weights of the refit models, one panel per layer (log counts; the range is "
         "clipped to the bulk, outliers counted in the end bins).",
         lambda: plots_sweep.sweep_weight_histogram_figure(result)),
        ("sweep-terms", "The decay and data terms at the end",
         "Mean size of the decay term d = −(ηλ/n)·w and of the data term g = −η·∂C0/∂w (full batch) at the final "
         "weights of each refit model, and the share of weights g pushes away from 0.",
         lambda: plots_sweep.sweep_terms_figure(result)),
    ]
    if grid_symbol(result.config) == "wd":  # AdamW's grid: its words, in the headings, captions and figures
        return [(i, in_grid_words(h), in_grid_words(c), _relabelled(draw)) for i, h, c, draw in out]
    return out


def _relabelled(draw: Callable) -> Callable:
    """``draw`` whose figure's text (titles, labels, legends) says wd where it said λ."""
    def relabelled():
        from matplotlib.text import Text

        fig = draw()
        if fig is not None:
            for t in fig.findobj(Text):
                t.set_text(in_grid_words(t.get_text()))
        return fig

    return relabelled


def explain_figures(result) -> list[Figure]:
    """The explain report's figures, in page order (the per-λ ones for the last λ given)."""
    P = plots_explain
    k = len(result.lmbdas) - 1 if len(result.lmbdas) > 1 else None
    main = [] if k is None else [
        ("explain-terms", "One step: each weight against its two terms",
         "Every weight (a sample of up to 4,000) at the last recorded step of a few epochs. Shaded: the term points "
         "toward zero. The decay term has its own scale (bottom row).", lambda: P.explain_terms_figure(result, k)),
        ("explain-cumulative", "Summed over the run: why L2 shrinks the weights",
         "Per weight, the decay and data terms summed over every step, along the sign of the initial weight.",
         lambda: P.explain_cumulative_figure(result, k)),
        ("explain-trajectories", "Trajectories",
         "Sampled weights at the recorded steps, from the same initial value and through the same mini-batches.",
         lambda: P.explain_trajectories_figure(result, k)),
    ]
    rest = [
        ("explain-learning-curves", "Learning curves",
         "Training (dashed) against held-out (solid) accuracy and cost C0 per epoch, and their gap.",
         lambda: P.explain_learning_curves_figure(result)),
        ("explain-fractions", "Away from zero, per epoch",
         "Share of weights whose data term pointed away from zero (solid) and whose |w| grew on net (dashed).",
         lambda: P.explain_fractions_figure(result)),
    ]
    hist = [] if k is None else [
        ("explain-histograms", "Histograms",
         "Left: final weights (log counts, range clipped). Right: sizes of the two terms at the last recorded step.",
         lambda: P.explain_histograms_figure(result, k))]
    norms = [("explain-norms", "Σw² against λ = 0", "Σw² at the end of every epoch.",
              lambda: P.explain_norm_figure(result))]
    return main + rest + hist + norms


def train_figures(result) -> list[Figure]:
    """The train report's figures, in page order."""
    P = plots_train
    return [
        ("train-learning-curves", "Learning curves",
         "Training (dashed) against evaluation (solid) accuracy and cost per epoch, and their gap, per setting.",
         lambda: P.train_learning_curves_figure(result)),
        ("train-weight-norms", "Σw² per epoch", "Σw² at the end of every epoch.",
         lambda: P.train_weight_norm_figure(result)),
        ("train-weight-histograms", "Final weights",
         "Final weights, one panel per layer (log counts; the range is clipped to the bulk, outliers counted in "
         "the end bins).", lambda: P.train_weight_histogram_figure(result)),
    ]


def figures_of(result) -> list[Figure]:
    """The figures of a TrainResult, SweepResult or ExplainResult."""
    if hasattr(result, "cv") and hasattr(result, "rows"):
        return sweep_figures(result)
    if hasattr(result, "snapshots"):
        return explain_figures(result)
    if hasattr(result, "runs") and hasattr(result, "params"):
        return train_figures(result)
    from ..errors import ConfigTypeError

    raise ConfigTypeError(f"result must be a TrainResult, SweepResult or ExplainResult; got {type(result).__name__}.")


def draw_pngs(result, ids: Sequence[str]) -> list[bytes | None]:
    """The PNG of each figure ``ids`` of ``result``'s report, or None where it has nothing to show (what the
    command line's helper process draws)."""
    figures = {fig_id: draw for fig_id, _, _, draw in figures_of(result)}
    out = []
    for fig_id in ids:
        fig = figures[fig_id]()
        out.append(None if fig is None else figure_png(fig))
    return out


#: The share of a report's figures drawn in this process while the helper process draws the rest (fewer
#: here: this process imports matplotlib first). Not tuned: in one timeline of the main job this process
#: then waited 0.6 s for the helper's four figures (docs/benchmarks.md, round three).
HERE = 1 / 3


class Drawing:
    """A report's figures being drawn: the later ones in the helper process (:mod:`l2reg.base.helper`)
    from the moment this is made, when it runs, the first ones here; :meth:`sections` gives them in page order.
    Without a helper every figure is drawn here: the same functions, the same PNGs."""

    def __init__(self, result, figures: list[Figure]):
        self.figures = figures
        self.here = round(len(figures) * HERE) if helper.running() else len(figures)
        self.there = helper.submit(draw_pngs, result, [f[0] for f in figures[self.here:]])

    def sections(self) -> list[tuple[str, str]]:
        """``(heading, <figure>)`` for each figure that has something to show."""
        pngs = [None if (fig := draw()) is None else figure_png(fig) for _, _, _, draw in self.figures[:self.here]]
        pngs += self.there.result()
        return [(heading, png_figure_html(png, fig_id, caption))
                for (fig_id, heading, caption, _), png in zip(self.figures, pngs) if png is not None]


def figure_sections(result) -> list[tuple[str, str]]:
    """``(heading, <figure>)`` for each figure of ``result``'s report that has something to show."""
    return Drawing(result, figures_of(result)).sections()


def write_figures(result, folder, fmt: str = "png") -> list[Path]:
    """Write each figure of ``result``'s report to ``folder/ID.png`` (or ``.svg``); returns the paths.

    ``result``: a TrainResult, SweepResult or ExplainResult. The figures are
    the report's, drawn at the same size (1280 px wide at 100 dpi for PNG).
    """
    V.choice("fmt", fmt, FORMATS)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fig_id, _, _, draw in figures_of(result):
        fig = draw()
        if fig is not None:
            paths.append(store.write_bytes(folder / f"{fig_id}.{fmt}", figure_bytes(fig, fmt)))
    return paths


EXPLORER_INTRO = (
    '<p class="note">Move the slider (arrow keys work too, or click a point of the path) to see what each λ did: '
    'its learning curves (training dashed, {eval} solid), Σw² per epoch, the histogram of its final weights{terms}.'
    '{reference} Everything is in this file; nothing is loaded.</p>')


def explorer_section(data: dict) -> str:
    """The explorer with a line saying how to use it."""
    ref, sym = data["reference"], data["path"].get("xlabel", "λ")
    return EXPLORER_INTRO.replace("λ", sym).format(
        eval=data["eval"], terms=" and the decay/data split" if "terms" in data["charts"] else "",
        reference="" if ref is None else f" Grey: {html.escape(data['models'][ref]['label'])}, for comparison.",
    ) + explorer.explorer_html(data)
