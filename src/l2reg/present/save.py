"""Writing a result's folder: its JSON, its arrays and its report, from the result's own data.

:func:`save` takes any of l2reg's results (:class:`~l2reg.fronts.training.TrainResult`,
:class:`~l2reg.fronts.cv.SweepResult` — the JAX MLP's, a PyTorch model's or
a JAX model's —, :class:`~l2reg.fronts.explaining.ExplainResult`,
:class:`~l2reg.fronts.reproduce.Reproduction`) and writes its files
atomically (:mod:`l2reg.base.store`: no pickle). The result's JSON document
is written last, so a folder that has it is complete. With
``interruptible=True`` (a run whose checkpoints can resume it) Ctrl-C while
the folder is written stops before the report is drawn or before the JSON is
written (:func:`l2reg.base.interrupts.phase`), so the run has no JSON and its
``--resume`` writes the folder again; otherwise the folder is finished first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..base import interrupts, store
from . import report
from .words import answer, derivation, markdown_table, sweep_answer, sweep_gap_sentence


def _safe_point(name: str, interruptible: bool) -> None:
    if interruptible:
        interrupts.phase(name)


def save_train(result, out, *, interruptible: bool = False) -> list[Path]:
    """``out/params.npz``, ``out/report.html`` and, last, ``out/metrics.json``."""
    out = Path(out)
    written = [store.write_params(out / "params.npz", result.params, result.runs)]
    _safe_point("report", interruptible)
    written.append(store.write_text(out / "report.html", report.train_report_html(result)))
    _safe_point("results", interruptible)
    return written + [store.write_json(out / "metrics.json", result.to_json())]


def sweep_document(result) -> dict:
    """``sweep.json``: the result's JSON with the sentence that says what the chosen λ did (``summary``) and the
    one that answers "is L2 regularization an addition?" with this run's numbers (``answer``)."""
    return dict(result.to_json(), summary=sweep_gap_sentence(result), answer=sweep_answer(result))


def save_sweep(result, out, *, interruptible: bool = False) -> list[Path]:
    """``out/params.npz`` (the refit models), ``out/report.html`` and, last, ``out/sweep.json``."""
    out = Path(out)
    runs = [{"lmbda": lm, "seed": result.config["seed"], "eta": result.chosen_eta} for lm in result.refit_lmbdas]
    written = [store.write_params(out / "params.npz", result.refit_params, runs)]
    _safe_point("report", interruptible)
    written.append(store.write_text(out / "report.html", report.sweep_report_html(result)))
    _safe_point("results", interruptible)
    return written + [store.write_json(out / "sweep.json", sweep_document(result))]


def explain_document(result) -> dict:
    """``explain.json``: the result's JSON with the answer and the derivation of each model with λ > 0."""
    doc = result.to_json()
    for k, model in enumerate(doc["models"]):
        if result.strength(k) > 0:
            model.update(answer=answer(result, k), derivation=derivation(result, k))
    return doc


def save_explain(result, out, *, interruptible: bool = False) -> list[Path]:
    """``out/explain.npz`` (snapshots and records), ``out/report.html`` and, last, ``out/explain.json``."""
    out = Path(out)
    arrays = {"lmbda": np.asarray(result.lmbdas), "steps": result.steps, "tracked": result.tracked,
              "tracked_index": result.tracked_index, "n_weights": result.n_weights}
    arrays.update({f"stat_{k}": v for k, v in result.stats.items()})
    for e, layers in result.snapshots.items():
        for li, layer in enumerate(layers):
            for name, a in layer.items():
                arrays[f"epoch{e}_{name}{li}"] = a
    for li, layer in enumerate(result.cumulative or []):
        for name, a in layer.items():
            arrays[f"cumulative_{name}{li}"] = a
    written = [store.write_npz(out / "explain.npz", arrays)]
    _safe_point("report", interruptible)
    written.append(store.write_text(out / "report.html", report.explain_report_html(result)))
    _safe_point("results", interruptible)
    return written + [store.write_json(out / "explain.json", explain_document(result))]


def save_reproduction(rep, out) -> list[Path]:
    """``nielsen.json``, ``nielsen.md``, one PNG per experiment (``nielsen_<key>.png``) and the CV path
    (``nielsen_cv.png``); each experiment's runs in ``out/<key>/`` (:func:`save_train`), the CV path in
    ``out/cv/cv.json``. Returns the paths of the top-level files."""
    out = Path(out)
    written = []
    for e in rep.experiments:
        save_train(e.train, out / e.experiment.key)
        png = out / f"nielsen_{e.experiment.key}.png"
        written.append(store.write_bytes(png, report.figure_png(report.reproduction_figure(e), dpi=110)))
    if rep.cv is not None:
        written.append(store.write_json(out / "cv" / "cv.json", rep.cv.to_json()))
        png = out / "nielsen_cv.png"
        written.append(store.write_bytes(png, report.figure_png(report.reproduction_cv_figure(rep.cv), dpi=110)))
    written.append(store.write_text(out / "nielsen.md", markdown_table(rep)))
    written.append(store.write_json(out / "nielsen.json", rep.to_json()))
    return written


_SAVERS = {"TrainResult": save_train, "SweepResult": save_sweep, "ExplainResult": save_explain,
           "Reproduction": save_reproduction}


def save(result, out, *, interruptible: bool = False) -> list[Path]:
    """Write ``result``'s folder ``out`` (created if needed): what each ``save_*`` of this module writes.

    ``interruptible``: Ctrl-C may stop the writing before the report and before the JSON (module
    docstring). Raises TypeError for anything that is not an l2reg result.
    """
    # by name: presentation never imports a front
    saver = _SAVERS.get(type(result).__name__)
    if saver is None:
        raise TypeError(f"result must be an l2reg TrainResult, SweepResult, ExplainResult or Reproduction; "
                        f"got {type(result).__name__}.")
    if saver is save_reproduction:
        return saver(result, out)
    return saver(result, out, interruptible=interruptible)
