"""The numbers and words of a decay monitor (``l2reg.torch.DecayMonitor``, ``l2reg.jax.monitor``), and its page.

A monitor records, at each recorded step, one row of :data:`STATS` per
parameter tensor; it has ``records``, ``recorded_steps``, ``group_hyper``
(per recorded step, ``(lr, weight_decay)`` per group), ``names`` (``(group,
name)`` per tensor), ``steps``, ``record_every``, ``steps_per_epoch``,
``epochs``, ``optimizer_name`` and ``group_info()``: per group its ``split``
(a key of the split texts), ``kind`` (the timescale's optimizer or None),
``momentum`` and ``dampening``. Nothing here imports a front's library.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from ..base import store
from ..fronts.conventions import decay_timescale

# Per parameter tensor at each recorded step.
STATS = ("away", "grow", "grow_sq", "sq", "abs_d", "abs_g", "zero_g", "numel")

_I = {name: i for i, name in enumerate(STATS)}
_SPLIT = {
    "none": "weight_decay = 0: no decay term, g = u",
    "closed": "coupled L2 under plain SGD: d = −lr·wd·w, g = −lr·∂C0/∂w",
    "decoupled": "decoupled: d = −lr·wd·w outside the moments, g = u − d",
    "shadow": "split of the actual update u: g = the same optimizer from the same state with weight_decay = 0, d = u − g",
    "zero_params": "split of the actual update u: g = the same optax transform from the same state given params = 0 "
                   "(no decay term), d = u − g",
}


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _ratio(a, b):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _fractions(t: np.ndarray) -> dict:
    """Fractions and means from summed stats ``(..., len(STATS))``."""
    c = {k: t[..., i] for k, i in _I.items()}
    return {
        "frac_away": _ratio(c["away"], c["numel"]), "frac_grow": _ratio(c["grow"], c["numel"]),
        "grow_sq_share": _ratio(c["grow_sq"], c["sq"]), "mean_abs_decay": _ratio(c["abs_d"], c["numel"]),
        "mean_abs_data": _ratio(c["abs_g"], c["numel"]), "decay_to_data": _ratio(c["abs_d"], c["abs_g"]),
        "frac_zero_data": _ratio(c["zero_g"], c["numel"]),
    }


def _timescale(mon, gi: int, info: dict, lr: float, wd: float) -> tuple[dict | None, list, str]:
    kind = info["kind"]
    if kind is None:
        return None, [], info.get("no_timescale") or f"no closed-form timescale for {mon.optimizer_name}"
    if lr <= 0:
        return None, [], "lr = 0 at the last recorded step"
    spe = mon.steps_per_epoch
    mu = info.get("momentum") if kind in ("momentum", "nesterov") else None
    ts = decay_timescale(optimizer=kind, n=spe or 1, batch_size=1, eta=lr, weight_decay=wd, momentum=mu)
    out = ts.to_json()
    if spe is None:
        out["tau_epoch"], out["steps_per_epoch"] = None, None
    text = ts.describe() if spe is not None else f"τ_iter = {ts.tau_iter:.5g} steps" if ts.tau_iter else ts.note
    if info.get("dampening") or 0:
        text += " (dampening ≠ 0 is not in this rate)"
    warnings = ts.warnings(mon.epochs) if spe is not None else ts.warnings()[:1] if (ts.per_step or 1) <= 0 else []
    return out, warnings, text


def summarize(mon, *, last: int | None = None) -> dict:
    """See :meth:`DecayMonitor.summary`."""
    records = mon.records[-last:] if last else mon.records
    steps = mon.recorded_steps[-last:] if last else mon.recorded_steps
    hyper = mon.group_hyper[-last:] if last else mon.group_hyper
    note = getattr(mon, "decay_note", None)  # decayed biases or norm scales (l2reg.torch's monitor, given the model)
    head = {"optimizer": mon.optimizer_name, "steps": mon.steps, "recorded_steps": len(records),
            "record_every": mon.record_every, "steps_per_epoch": mon.steps_per_epoch, "epochs": mon.epochs,
            "decay_note": note}
    if not records:
        return {**head, "groups": [], "layers": [], "history": {},
                "answer": ([note] if note else []) + ["No step recorded yet."]}
    P = len(mon.names)  # groups added later (add_param_group) come last: earlier records lack them
    A = np.stack([np.vstack([r, np.full((P - len(r), len(STATS)), np.nan)]) for r in records])  # (S, P, len(STATS))
    total = np.nansum(A, axis=0)  # (P, len(STATS))
    group_of = np.array([gi for gi, _ in mon.names])
    layers = _layers(mon, A, total, group_of, hyper[-1])
    groups = []
    for gi, info in enumerate(mon.group_info()):
        lr, wd = hyper[-1][gi]
        ts, warnings, ts_text = _timescale(mon, gi, info, lr, wd)
        pooled = {k: _num(v) for k, v in _fractions(total[group_of == gi].sum(0)).items()}
        groups.append({"index": gi, "lr": lr, "weight_decay": wd, "split": info["split"],
                       "split_text": _SPLIT[info["split"]], "n_tensors": int((group_of == gi).sum()),
                       "n_weights": sum(x["n_weights"] for x in layers if x["group"] == gi),
                       **pooled, "timescale": ts, "timescale_text": ts_text, "warnings": warnings})
    history = {"step": [int(s) for s in steps]}
    per_step = _fractions(A)
    for key in ("frac_away", "mean_abs_decay", "mean_abs_data"):
        history[key] = {name: [_num(x) for x in per_step[key][:, i]] for i, (_, name) in enumerate(mon.names)}
    history["weight_norm"] = {name: [_num(math.sqrt(x)) if np.isfinite(x) else None for x in A[:, i, _I["sq"]]]
                              for i, (_, name) in enumerate(mon.names)}
    out = {**head, "groups": groups, "layers": layers, "history": history}
    out["answer"] = _answer(out)
    return finite_or_none(out)


def finite_or_none(x):
    """``x`` with every NaN or infinite float replaced by None (strict JSON; inf τ means weight_decay = 0)."""
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite_or_none(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _layers(mon, A, total, group_of, hyper) -> list:
    out = []
    frac = _fractions(total)
    for i, (gi, name) in enumerate(mon.names):
        sq = A[:, i, _I["sq"]]
        seen = np.flatnonzero(np.isfinite(sq))
        row = {"name": name, "layer": name.rpartition(".")[0], "group": gi, "decayed": hyper[gi][1] > 0,
               "n_weights": int(A[seen[-1], i, _I["numel"]]) if seen.size else 0}
        row.update({k: _num(v[i]) for k, v in frac.items()})
        row["weight_norm_first"] = _num(math.sqrt(sq[seen[0]])) if seen.size else None
        row["weight_norm"] = _num(math.sqrt(sq[seen[-1]])) if seen.size else None
        out.append(row)
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _answer(s: dict) -> list[str]:
    lines = [s["decay_note"]] if s.get("decay_note") else []
    for g in s["groups"]:
        if g["weight_decay"] == 0:
            lines.append(f"Group {g['index']} has weight_decay = 0 ({g['n_weights']:,} parameters): only the data "
                         f"term moves them.")
            continue
        lines.append(
            f"Group {g['index']} ({s['optimizer']}, lr = {g['lr']:g}, weight_decay = {g['weight_decay']:g}; "
            f"{g['split_text']}): over {s['recorded_steps']} recorded steps the data term pushed "
            f"{_pct(g['frac_away'])} of its {g['n_weights']:,} weights away from zero (sign(g) = sign(w)), while "
            f"the decay term pulled every one toward zero, mean |d| = {g['mean_abs_decay']:.3g} against mean "
            f"|g| = {g['mean_abs_data']:.3g}; {_pct(g['frac_grow'])} of them grew in magnitude on net.")
        lines.append(g["timescale_text"])
        lines += g["warnings"]
    return lines


# ---------------------------------------------------------------- HTML


def _plot(history: dict, key: str, ylabel: str, fig_id: str) -> str:
    """One line per tensor over the recorded steps, as a figure of the project's reports."""
    from ..present.pages import figure_html
    from ..present.plots import WIDTH, pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    for name, ys in history[key].items():
        ys = np.array([np.nan if y is None else y for y in ys], float)
        if np.isfinite(ys).any():
            ax.plot(history["step"], ys, label=name, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=10, ncol=3)
    return figure_html(fig, fig_id, f"{ylabel} per recorded step, one line per parameter tensor.")


#: The report's columns: (key, heading in the words of the explain report, format). Formats: ``pct`` a fraction
#: in %, ``g`` 3 significant digits, ``int``, ``yes``, ``split`` (its short name), ``text`` as is.
GROUP_COLUMNS = (("index", "group", "text"), ("lr", "lr", "g"), ("weight_decay", "weight decay", "g"),
                 ("split", "how d and g are split", "split"), ("n_weights", "weights", "int"),
                 ("frac_away", "g away from 0", "pct"), ("frac_grow", "|w| grew", "pct"),
                 ("mean_abs_decay", "mean |d|", "g"), ("mean_abs_data", "mean |g|", "g"),
                 ("decay_to_data", "|d| / |g|", "g"), ("timescale_text", "decay timescale", "text"))
LAYER_COLUMNS = (("name", "parameter", "text"), ("group", "group", "text"), ("decayed", "decayed", "yes"),
                 ("n_weights", "weights", "int"), ("frac_away", "g away from 0", "pct"),
                 ("frac_grow", "|w| grew", "pct"), ("mean_abs_decay", "mean |d|", "g"),
                 ("mean_abs_data", "mean |g|", "g"), ("decay_to_data", "|d| / |g|", "g"),
                 ("frac_zero_data", "g = 0", "pct"), ("weight_norm_first", "‖w‖ first", "g"),
                 ("weight_norm", "‖w‖ last", "g"))
_SHORT_SPLIT = {"none": "no decay", "closed": "closed form", "decoupled": "decoupled", "shadow": "shadow step",
                "zero_params": "params = 0"}


def _cell(v, fmt: str) -> str:
    if v is None:
        return "–"
    if fmt == "pct":
        return f"{100 * v:.1f}%"
    if fmt == "int":
        return f"{v:,}"
    if fmt == "yes":
        return "yes" if v else "no"
    if fmt == "split":
        return _SHORT_SPLIT.get(v, str(v))
    if fmt == "g" and isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def _table(rows: list, columns: tuple) -> str:
    from ..present.pages import table_html

    return table_html([h for _, h, _ in columns], [[_cell(r.get(k), f) for k, _, f in columns] for r in rows])


def html_report(s: dict) -> str:
    """The monitor's report, in the page of l2reg's explain report: the answer, the tables (in its words), two
    figures."""
    from ..present.pages import html_page

    sections = [(None, "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in s["answer"]) + "</ul>")]
    if s["groups"]:
        splits = sorted({g["split"] for g in s["groups"]})
        legend = "; ".join(_SPLIT[k] for k in splits)
        sections.append(("Parameter groups", _table(s["groups"], GROUP_COLUMNS) + (
            f'<p class="note">Summed over the recorded steps. d is the decay term of a step, g its data term; '
            f'"away from 0" is sign(g) = sign(w). {html.escape(legend)}.</p>')))
        sections.append(("Per parameter tensor", _table(s["layers"], LAYER_COLUMNS) + (
            '<p class="note">‖w‖ first, last: at the first and the last recorded step; g = 0: weights whose data '
            'term was zero (unused, or frozen by the optimizer).</p>')))
        sections.append(("Away from zero", _plot(s["history"], "frac_away", "fraction pushed away from zero",
                                                 "monitor-away")))
        sections.append(("‖w‖ per tensor", _plot(s["history"], "weight_norm", "‖w‖", "monitor-norms")))
    return html_page(f"What weight decay did: {s['optimizer']}, {s['steps']} steps ({s['recorded_steps']} recorded)",
                     sections)


class MonitorFiles:
    """What both decay monitors (:class:`l2reg.torch.DecayMonitor`, :class:`l2reg.jax.DecayMonitor`) write from
    their ``summary()``: the JSON and the self-contained page."""

    def write_json(self, path) -> Path:
        """Write :meth:`summary` as JSON into ``path``: a file if it ends in ``.json``, else a folder (created if
        missing) that receives ``decay_monitor.json``."""
        data = json.dumps(self.summary(), indent=2, ensure_ascii=False).encode()
        return store.write_bytes(store.target_path(path, "decay_monitor.json", (".json",)), data)

    def write_html(self, path) -> Path:
        """Write the self-contained report, in the page of ``l2reg explain``'s, into ``path``: a file if it ends in
        ``.html`` or ``.htm``, else a folder (created if missing) that receives ``decay_monitor.html``."""
        return store.write_text(store.target_path(path, "decay_monitor.html", (".html", ".htm")),
                                html_report(self.summary()))
