"""Presenting results: Rich tables for the terminal and the HTML reports of train, sweep and explain.

The figures live in :mod:`l2reg.present.plots_train`, :mod:`l2reg.present.plots_sweep` and
:mod:`l2reg.present.plots_explain`, the page machinery in :mod:`l2reg.present.pages`,
the λ explorer in :mod:`l2reg.present.explorer`; their public names are re-exported
here, so ``report.sweep_path_figure`` and the like keep working.
"""

from __future__ import annotations

import html

import numpy as np
from rich.table import Table

from . import explorer
from .pages import (  # noqa: F401
    Drawing,
    explain_figures,
    explorer_section,
    figure_bytes,
    figure_html,
    figure_png,
    figure_sections,
    html_page,
    sweep_figures,
    table_html,
    train_figures,
    write_figures,
)
from .plots import pyplot as _pyplot
from .plots_explain import (  # noqa: F401  (re-exported)
    explain_cumulative_figure,
    explain_fractions_figure,
    explain_histograms_figure,
    explain_learning_curves_figure,
    explain_norm_figure,
    explain_terms_figure,
    explain_trajectories_figure,
)
from .plots_sweep import (  # noqa: F401
    sweep_gap_figure,
    sweep_heatmap_figure,
    sweep_learning_curves_figure,
    sweep_path_figure,
    sweep_terms_figure,
    sweep_weight_histogram_figure,
    sweep_weight_norm_figure,
)
from .plots_train import train_learning_curves_figure, train_weight_histogram_figure, train_weight_norm_figure  # noqa: F401
from .words import _lmbda_label, grid_symbol, mean_sd_text, answer, cost_formula, derivation, sweep_answer, sweep_gap_sentence  # noqa: F401  (sweep_gap_sentence, sweep_answer: public here too)


def _final(runs, key: str):
    """The last value of ``key`` in each run (NaN where it was not monitored)."""
    return np.array([r[key][-1] if r.get(key) else np.nan for r in runs], np.float64)


def _stat(values: np.ndarray, kind: str) -> str:
    """One number, or mean ± sd (over seeds) when there are several; accuracies in %."""
    scale, fmt, sd_fmt = (100.0, ".2f", ".2f") if kind == "acc" else (1.0, ".4g", ".2g")
    v = scale * values
    if np.all(np.isnan(v)):
        return "-"
    text = f"{np.nanmean(v):{fmt}}" + (f" ± {np.nanstd(v, ddof=1):{sd_fmt}}" if len(v) > 1 else "")
    return text + ("%" if kind == "acc" else "")


def _train_rows(result):
    """Headers and rows of the train table (terminal and HTML alike): one row per setting, and with several
    seeds the mean ± sd over them (each seed's numbers are in metrics.json)."""
    runs, reg, ev = result.runs, result.config.get("regression", False), result.config["eval"]
    varies = [(key, label) for key, label in (("eta", "η"), ("momentum", "μ"), ("weight_decay", "wd"))
              if len({str(r.get(key)) for r in runs}) > 1 or (key == "weight_decay" and key in runs[0])]
    seeds = sorted({r["seed"] for r in runs})
    groups: dict = {}
    for r in runs:
        groups.setdefault(str([r.get(k) for k in ("lmbda", "eta", "momentum", "weight_decay")]), []).append(r)
    cost = "C" if result.config.get("penalty", "l2") != "none" else "C0"
    headers = ["λ", *(label for _, label in varies), f"train cost {cost}", *([] if reg else ["train acc"]),
               f"{ev} cost {cost}", *([] if reg else [f"{ev} acc"]), "Σw²"]
    rows = []
    for group in groups.values():
        r = group[0]
        lm = r["lmbda"]
        row = [",".join(f"{x:g}" for x in lm) if isinstance(lm, (list, tuple)) else f"{lm:g}"]
        row += [f"{r[key]:g}" for key, _ in varies]
        for key, kind in (("training_cost", "cost"), ("training_accuracy", "acc"), ("evaluation_cost", "cost"),
                          ("evaluation_accuracy", "acc"), ("weight_sq_norm", "cost")):
            if not (reg and kind == "acc"):
                row.append(_stat(_final(group, key), kind))
        if any(g.get("diverged") for g in group):
            row[-1] += " (diverged)"
        rows.append((row, group))
    return headers, rows, seeds


def train_table(result) -> Table:
    """One row per setting (λ, η, …): final costs, accuracies and Σw² (mean ± sd over seeds when several)."""
    headers, rows, seeds = _train_rows(result)
    c = result.config
    runs = result.runs
    sparse = c.get("penalty") in ("l1", "elastic-net")
    stopped = "stopped_epoch" in runs[0]
    full_batch = "iterations" in runs[0]
    seed_text = f", mean ± sd over seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else ""
    table = Table(title=f"l2reg train: {c['dataset']}, n = {c['n']}, {c['epochs']} epochs{seed_text}",
                  title_justify="left",
                  caption=(f"{cost_formula(c)}: the cost the run minimizes; accuracies and Σw² (all weights) at "
                           "the last epoch."), caption_justify="left")
    for h in headers + (["w = 0"] if sparse else []) + (["stopped (best)"] if stopped else []) + (
            ["iterations"] if full_batch else []):
        table.add_column(h, justify="right")
    for row, group in rows:
        extra = [_stat(_final(group, "zero_weight_fraction"), "acc")] if sparse else []
        if stopped:
            extra.append(", ".join(f"{g['stopped_epoch']} ({g['best_epoch']})" for g in group))
        if full_batch:
            extra.append(", ".join(f"{g['iterations']}" + ("" if g["converged"] else " (not converged)")
                                   for g in group))
        table.add_row(*row, *extra)
    return table


def _train_rows_html(result) -> str:
    """The train table as HTML (the same rows as :func:`train_table`)."""
    headers, rows, _ = _train_rows(result)
    return table_html(headers, [row for row, _ in rows])


def train_report_html(result, *, figures: bool = False) -> str:
    """The train report: settings, one row per run and the λ explorer (its charts, drawn in the page, are the
    learning curves, Σw² and the weight histogram of every run), self-contained.

    ``figures`` adds the static matplotlib figures too; by default they are left out, because drawing them
    takes longer than a short run itself (``l2reg train --figures png`` writes them as files).
    """
    c = result.config
    eta = c["eta"] if not isinstance(c["eta"], list) else ", ".join(f"{x:g}" for x in c["eta"])
    settings = (
        f"dataset <code>{html.escape(str(c['dataset']))}</code>, sizes {'-'.join(map(str, c['sizes']))}, "
        f"{html.escape(c['activation'])} hidden units, {html.escape(c['cost'])} cost, penalty "
        f"{html.escape(c.get('penalty', 'l2'))}, optimizer {html.escape(c.get('optimizer', 'sgd'))}, η = {eta}, "
        f"m = {c['batch_size']}, n = {c['n']} training examples, {c['epochs']} epochs, evaluated on the "
        f"{html.escape(c['eval'])} set ({c.get('n_evaluation', '?')} examples), seed(s) "
        f"{', '.join(map(str, np.atleast_1d(c['seed'])))}; {result.train_seconds:.1f} s training + "
        f"{result.compile_seconds:.1f} s compiling."
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    sections = [(None, f'<p class="note">{settings}</p>{notes}<p class="note">Every λ trained at once, from the '
                       f'same initial weights and through the same mini-batches (per seed): the runs differ by '
                       f'their settings alone. The cost is {html.escape(cost_formula(c))}, n = {c["n"]}.</p>'),
                ("The runs, one row per λ", _train_rows_html(result)),
                ("Explore λ", explorer_section(explorer.train_data(result)))]
    if figures:
        sections += figure_sections(result)
    else:
        sections.append(("Figures", '<p class="note">The static figures of this run (learning curves, Σw², '
                                    'histograms) are written as files by <code>l2reg train --figures png</code> '
                                    '(or <code>svg</code>).</p>'))
    return html_page(f"l2reg train: {c['dataset']}", sections)


# ---------------------------------------------------------------- the sweep


TEST_SET_NOTE = "The test set was used only for this final report, never to choose λ."


def test_set_note(result) -> str:
    """:data:`TEST_SET_NOTE` in the grid's symbol (λ, or wd under AdamW)."""
    return TEST_SET_NOTE.replace("λ", grid_symbol(result.config))


def sweep_heading(result) -> str:
    """The command and what it swept: ``l2reg sweep: digits``, or for your own model ``l2reg torch sweep:
    factory on digits``."""
    c = result.config
    if c.get("engine") in ("torch", "jax"):
        return f"l2reg {c['engine']} sweep: {str(c.get('model', '')).partition(': ')[0]} on {c['dataset']}"
    return f"l2reg sweep: {c['dataset']}"


def _sweep_rows_text(result):
    """Header, formatted cells and "from the fold models" flags, shared by the terminal and HTML tables
    (the grid's column λ and λ/n, or wd alone under AdamW)."""
    reg, sym = result.regression, grid_symbol(result.config)
    over_n = [] if sym == "wd" else ["λ/n"]
    if reg:
        headers = ["", sym, *over_n, "CV cost", "± SE", "train cost", "test cost", "test − train", "Σw²", "from"]
    else:
        headers = ["", sym, *over_n, "CV acc %", "± SE", "train %", "test %", "gap", "Σw²", "from"]
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
        cells.append([mark, _lmbda_label(r["lmbda"]), *[f"{r['lmbda_over_n']:.2g}"][:len(over_n)], cv, se, tr, te,
                      gap, f"{r['weight_sq_norm']:.4g}", "refit" if r["refit"] else "folds"])
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
        title=f"{sweep_heading(result)}, n = {c['n']}, {c['folds']}-fold CV ({n_fold} per fold), "
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


def _with_command(text: str) -> str:
    """The ``l2reg explain`` command at the end of :func:`sweep_answer`, set as code (``text`` is escaped)."""
    head, sep, command = text.rpartition(": l2reg explain")
    return f"{head}: <code>l2reg explain{command}</code>" if sep else text


def sweep_report_html(result) -> str:
    """The sweep's self-contained report: summary, table, the λ explorer and the figures."""
    drawing = Drawing(result, sweep_figures(result))  # first: a helper process draws while the rest is written
    c = result.config
    headers, cells, dims = _sweep_rows_text(result)
    row_classes = ["chosen" if r["chosen"] else "" for r in result.rows]
    first = headers.index("± SE") + 1
    cell_classes = [["dim" if (d and first <= j) else "" for j in range(len(headers))] for d in dims]
    etas = f" (chosen from {', '.join(f'{x:g}' for x in result.etas)})" if len(result.etas) > 1 else ""
    model = c.get("model") or (f"sizes {'-'.join(map(str, c['sizes']))}, {c['activation']} hidden units, "
                               f"{c['cost']} cost, init {c['init']}")
    settings = (
        f"dataset <code>{html.escape(str(c['dataset']))}</code>, {html.escape(model)}, "
        f"η = {c['eta']:g}{etas}, m = {c['batch_size']}, {c['epochs']} epochs, n = {c['n']} training examples, "
        f"{c['folds']}-fold stratified CV (n per fold = {', '.join(map(str, sorted(set(c['n_fold']))))}), "
        f"seed {c['seed']}, {c['models_cv']} CV models + {c['models_refit']} refit models, "
        f"{result.train_seconds:.1f} s training" + (f" + {result.compile_seconds:.1f} s compiling." if
                                                 result.compile_seconds >= 0.05 else ".")
    )
    sym = grid_symbol(c)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)  # the data; a torch sweep's strategy
    summary = (
        f"<p><b>Chosen {sym} = {_lmbda_label(result.chosen_lmbda)}</b> (rule <code>{html.escape(c['select'])}</code>"
        f"{'' if c['select'] == 'min' else f': the largest {sym} within one standard error of the best mean'}).</p>"
        f"<p>{html.escape(sweep_gap_sentence(result))}</p>"
        f"<p>{_with_command(html.escape(sweep_answer(result)))}</p>"
        f"<p><b>{html.escape(test_set_note(result))}</b></p><p class=\"note\">{settings}</p>{notes}"
        f"<p class=\"note\">The cost is {html.escape(cost_formula(c))}, n = the training-set size of each model "
        f"(a fold's training part in cross-validation, all n for the refit).</p>"
    )
    table = table_html(headers, cells, row_classes, cell_classes) + (
        f'<p class="note">train/test columns: the model refit on all n = {c["n"]} ("refit") or the mean of the '
        f'{c["folds"]} fold models (grey).</p>')
    sections = [(None, summary), (f"The path, one row per {sym}" if len(result.etas) == 1 else
                                  f"The grid, one row per (η, {sym})", table),
                (f"Explore {sym}" + (f" at the chosen η = {result.chosen_eta:g}" if len(result.etas) > 1 else ""),
                 explorer_section(explorer.sweep_data(result)))]
    sections += drawing.sections()
    return html_page(sweep_heading(result), sections)


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


def explain_report_html(result) -> str:
    """The explain report: answer, derivation, the λ explorer, table and figures, self-contained."""
    drawing = Drawing(result, explain_figures(result))  # first: a helper process draws while the rest is written
    c = result.config
    s = result.epoch_summary()
    settings = (
        f"dataset <code>{html.escape(str(c['dataset']))}</code>, sizes {'-'.join(map(str, c['sizes']))}, "
        f"{html.escape(c['activation'])} hidden units, {html.escape(c['cost'])} cost, η = {c['eta']:g}, "
        f"m = {c['batch_size']}, n = {c['n']}, {c['epochs']} epochs, seed {c['seed']}; "
        f"{result.steps_per_epoch} steps per epoch, recorded every {result.record_every} "
        f"({result.train_seconds:.2f} s training + {result.compile_seconds:.1f} s compiling)."
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    sections = [(None, f'<p class="note">{settings}</p>{notes}')]
    for k in range(len(result.lmbdas)):
        if result.strength(k) == 0:
            continue
        body = "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in answer(result, k)) + "</ul>"
        body += "<pre>" + html.escape("\n".join(derivation(result, k))) + "</pre>"
        sections.append((f"{result.label(k)}: is L2 regularization an addition?", body))
    sections.append(("Explore λ", explorer_section(explorer.explain_data(result))))
    headers = ["model", "g away from 0", "|w| grew", "their share of Σw²", "mean |d|", "mean |g|", "|d| / |g|",
               "Σw²", "Σw² / Σw²(λ=0)"]
    rows = [[result.label(k), f"{100 * s['frac_away'][-1, k]:.1f}%", f"{100 * s['frac_grow'][-1, k]:.1f}%",
             f"{100 * s['grow_sq_share'][-1, k]:.1f}%", f"{s['mean_abs_decay'][-1, k]:.3g}",
             f"{s['mean_abs_data'][-1, k]:.3g}", f"{s['decay_to_data'][-1, k]:.3g}",
             f"{s['weight_sq_norm'][-1, k]:.4g}", f"{s['weight_sq_ratio'][-1, k]:.3g}"]
            for k in range(len(result.lmbdas))]
    per_layer = result.layer_summary()
    layer_rows = [[f"{lm:g}", str(li + 1), f"{100 * per_layer['frac_away'][li, k]:.1f}%",
                   f"{100 * per_layer['frac_grow'][li, k]:.1f}%", f"{per_layer['mean_abs_decay'][li, k]:.3g}",
                   f"{per_layer['mean_abs_data'][li, k]:.3g}"]
                  for k, lm in enumerate(result.lmbdas) for li in range(len(result.n_weights))]
    sections.append(("The last epoch, in numbers", table_html(headers, rows) + table_html(
        ["λ", "layer", "g away from 0", "|w| grew", "mean |d|", "mean |g|"], layer_rows)
        + '<p class="note">Means over the recorded steps of the last epoch. d = −(ηλ/n)·w is the decay term, '
          'g = −(η/m)·Σ_x ∂C0_x/∂w the data term; "away from 0" is sign(g) = sign(w).</p>'))
    sections += drawing.sections()
    return html_page(f"l2reg explain: {c['dataset']}", sections)


def _tau(x) -> str:
    return "-" if x is None else ("∞" if x == float("inf") else f"{x:.4g}")


def convert_table(conversion) -> Table:
    """One row per convention: the value, its equation with numbers, and the decay timescales τ_iter
    (steps) and τ_epoch (epochs). The code to paste: :func:`convert_code`; caveats: :func:`convert_caveats`."""
    inputs = ", ".join(f"{k} = {v:g}" for k, v in conversion.inputs.items() if v is not None)
    table = Table(title=f"l2reg convert: {conversion.value:g} as {conversion.source} is λ = {conversion.lmbda:.6g}"
                        + (f" ({inputs})" if inputs else ""), title_justify="left")
    table.add_column("convention", overflow="fold", ratio=3)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("equation", overflow="fold", ratio=3)
    table.add_column("τ steps", justify="right", no_wrap=True)
    table.add_column("τ epochs", justify="right", no_wrap=True)
    for row in conversion.rows:
        value = f"{row['value']:.6g}" if row["value"] is not None else "needs " + " and ".join(
            x.split(" (")[0] for x in row["missing"])
        table.add_row(f"[bold]{row['key']}[/bold]: {row['setting']}", value, row["equation"],
                      _tau(row.get("tau_iter")), _tau(row.get("tau_epoch")))
    return table


def convert_code(conversion) -> list[str]:
    """The code of every row as plain lines, to print unwrapped below the table: a ``#`` line naming the
    convention and what the code assumes, then the code (each line complete, pasteable as is)."""
    lines = ["Code to paste:"]
    for row in conversion.rows:
        if row["value"] is None:
            lines.append(f"# {row['key']}: needs " + " and ".join(x.split(" (")[0] for x in row["missing"]))
        elif not row.get("code"):
            lines.append(f"# {row['key']}: give " + " and ".join(f"--{x.replace('_', '-')}" for x in row["code_needs"])
                         + " for a complete line")
        else:
            lines.append(f"# {row['key']}" + (f" (assumes {row['code_assumes']})" if row.get("code_assumes") else ""))
            lines.extend(row["code"].splitlines())
    return lines


def convert_caveats(conversion) -> Table:
    """The caveat of each convention, as a borderless two-column list."""
    table = Table(title="caveats", title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for row in conversion.rows:
        table.add_row(row["key"], row["caveat"])
    return table


# ---------------------------------------------------------------- reproduction (Nielsen, chapter 3)


def _mean_sd(stat) -> str:
    return mean_sd_text(stat, missing="-")


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
                _mean_sd(r["final"]), "-" if nf is None else f"{nf:.2f}",
                _mean_sd(r["peak"]), "-" if npk is None else f"{npk:.2f}",
                f"{e.seconds:.0f} s" if i == 0 else "",
            )
        table.add_row("", "gain", _mean_sd(e.gain), f"{e.nielsen_gain:+.2f}", "", "", "", end_section=True)
    if rep.cv is not None:
        c = rep.cv
        table.add_row(f"CV λ, {c.folds} folds", f"{c.lmbda:g}", _mean_sd(c.test),
                      "", _mean_sd(c.peak), "", f"{c.seconds:.0f} s")
        table.add_row("CV − hand", "", _mean_sd(c.difference), "", "", "", "")
    return table


def reproduction_cv_figure(choice):
    """The small experiment's CV path: mean accuracy ± SE over the folds against λ, the choice and Nielsen's λ marked."""
    plt = _pyplot()
    lm, mean, se = np.array(choice.grid), np.array(choice.cv_mean), np.array(choice.cv_se)
    x = np.where(lm > 0, lm, lm[lm > 0].min() / 3 if (lm > 0).any() else 1.0)  # λ = 0 drawn left of the log axis
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.errorbar(x, mean, yerr=se, fmt="o-", capsize=3, color="C0", label=f"{choice.folds}-fold CV accuracy (mean ± SE)")
    ax.axvline(x[list(lm).index(choice.lmbda)], color="C3", lw=1.5, label=f"chosen ({choice.select}): λ = {choice.lmbda:g}")
    ax.axvline(choice.hand_lmbda, color="k", ls=":", lw=1.2, label=f"Nielsen's λ = {choice.hand_lmbda:g}")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}" for v in lm], rotation=45)
    ax.set_xlabel("λ (λ = 0 at the left)")
    ax.set_ylabel("CV accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


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
