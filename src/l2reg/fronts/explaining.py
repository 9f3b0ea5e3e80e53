"""What the L2 penalty does to every weight, measured on a real run.

The penalty is added to the *cost*, C = C0 + (λ/2n)·Σw², not to the weights.
One step of mini-batch SGD (learning rate η, batch size m, n training
examples, coupled L2) moves each weight by two terms:

    Δw = d + g,    d = −(ηλ/n)·w                  the decay term: always toward zero
                   g = −(η/m)·Σ_x ∂C0_x/∂w        the data term: either way

:func:`explain` trains the models with the engine itself
(:func:`l2reg.core.engine.fit_stack`), with a :class:`Recorder` riding along
every step: :func:`l2reg.core.engine.step_terms` splits the update the optax chain
computes into the two terms, so what is recorded is the trajectory
``l2reg train`` takes.

* g is the same chain without the penalty (``penalty="none"``) applied to the
  data gradient;
* d is the full chain applied to a zero gradient (its response to the
  penalty alone);
* the step actually taken is the full chain applied to the data gradient; for
  plain SGD it equals d + g.

Other optimizers (``momentum``, ``nesterov``, ``adam`` with coupled L2,
``adamw`` with decoupled weight decay): the split is of the *actual* update
u of the actual trajectory. g is the decay-free chain (the rule of
:meth:`l2reg.core.update.OptimizerSpec.without_decay`, built as the same chain with
λ/n = 0 and wd = 0 so that it reads the same optimizer state) applied to the
data gradient with the current state (velocity, Adam moments), and d = u − g.
So for momentum d = −η(λ/n)·w (nesterov: −η(1+μ)(λ/n)·w), the decay that
earlier steps put into the velocity counting as data term; for Adam (coupled)
d is the change the penalty makes through the moments; for AdamW
d = −η·wd·w exactly (decoupled: outside the moments, not in the cost). With
AdamW the models differ by ``weight_decay`` (with a wd = 0 companion) and λ = 0.

Every λ trains at once in one stack, always with a λ = 0 companion, from the
same initial weights and through the same mini-batches, so their weights and
Σw² compare directly. Every step's d and g are summed per weight over the
whole run (the cumulative effect); every ``record_every``-th step's are
summarized, and a few epochs' are kept whole for the plots.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base import interrupts
from ..core.network import NetworkSpec
from ..core.terms import STAT_NAMES, Recorder
from ..errors import ConfigError, DataError
from ..options import (DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_ETA, MONITORS, ExplainOptions, TrainOptions,
                       documented)

log = logging.getLogger(__name__)

# Records per epoch aimed at when record_every is not given.
RECORDS_PER_EPOCH = 50


# ---------------------------------------------------------------- what is recorded


# ---------------------------------------------------------------- the result


@dataclass
class ExplainResult:
    """What :func:`explain` measured.

    Models: ``lmbdas[k]`` for k = 0..K−1, ``lmbdas[0] == 0`` (the companion).
    Arrays (NumPy):

    * ``steps``: ``(S,)`` global index (from 0) of each recorded step;
    * ``stats[name]``: ``(S, n_layers, K)`` sums (see :func:`layer_stats`);
    * ``n_weights``: ``(n_layers,)``;
    * ``tracked``: ``(S, T, K)`` sampled weights before each recorded step,
      ``tracked_index``: ``(T, 3)`` their (layer, i, o);
    * ``history[name]``: ``(epochs, K)`` end-of-epoch metrics, including
      ``weight_sq_norm``;
    * ``snapshots``: epoch -> per layer ``{"w", "d", "g"}`` ``(n_in, K, n_out)``
      at that epoch's last recorded step.
    """

    config: dict
    lmbdas: list
    steps_per_epoch: int
    record_every: int
    steps: np.ndarray
    stats: dict
    n_weights: np.ndarray
    tracked: np.ndarray
    tracked_index: np.ndarray
    history: dict
    snapshots: dict
    train_seconds: float
    compile_seconds: float
    notes: list = field(default_factory=list)
    reproduced: dict | None = None
    final_params: list | None = None  # the stack after the last epoch, (n_in, K, n_out) weights
    weight_decays: list | None = None  # adamw: the decoupled wd of each model (lmbdas all 0)
    cumulative: list | None = None  # per layer {"w0", "decay", "data"} (n_in, K, n_out): Σ over every step

    def strength(self, k: int) -> float:
        """Model k's decay setting: its weight decay under AdamW, else its λ."""
        return self.weight_decays[k] if self.weight_decays is not None else self.lmbdas[k]

    def label(self, k: int) -> str:
        return f"wd = {self.weight_decays[k]:g}" if self.weight_decays is not None else f"λ = {self.lmbdas[k]:g}"

    # -- derived numbers

    def decay_factors(self, k: int) -> dict:
        """What the decay alone does to model k's weights: the factor per step and per epoch, and τ.

        ``decay_factor_per_step`` is (1 − ηλ/n) under SGD (the long-run rate under
        momentum, 1 − η·wd under AdamW); ``decay_factor_per_epoch`` its power
        over an epoch's steps; ``tau_iter``/``tau_epoch`` the timescale
        (:func:`l2reg.fronts.conventions.decay_timescale`). None where undefined (coupled L2 under Adam).
        """
        from .conventions import decay_timescale

        c = self.config
        key = "weight_decay" if self.weight_decays is not None else "lmbda"
        ts = decay_timescale(optimizer=c.get("optimizer", "sgd"), n=c["n"], batch_size=c["batch_size"], eta=c["eta"],
                             momentum=c.get("momentum"), decay_scaling=c.get("decay_scaling") or "lr",
                             **{key: self.strength(k)})
        per_epoch = None if ts.per_step is None else ts.per_step ** self.steps_per_epoch
        finite = lambda x: x if x is not None and np.isfinite(x) else None  # noqa: E731  (JSON has no inf)
        return {"decay_factor_per_step": ts.per_step, "decay_factor_per_epoch": per_epoch,
                "tau_iter": finite(ts.tau_iter), "tau_epoch": finite(ts.tau_epoch)}

    def run_summary(self, k: int) -> dict | None:
        """Model k over the whole run, from ``cumulative`` (None without it): ``frac_grew_over_run``, the
        share of weights whose |w| ended larger than it started (|w0 + Σd + Σg| > |w0|), and
        ``frac_pull_beats_push``, the share whose summed decay pull toward 0 beat the summed data push
        (the cumulative figure's numbers)."""
        if not self.cumulative:
            return None
        w0, dsum, gsum = (np.concatenate([np.ravel(layer[name][:, k, :]) for layer in self.cumulative])
                          for name in ("w0", "decay", "data"))
        wf = w0 + dsum + gsum
        side = np.where(dsum != 0, -np.sign(dsum), np.where(wf < 0, -1.0, 1.0))
        return {"frac_grew_over_run": float((np.abs(wf) > np.abs(w0)).mean()),
                "frac_pull_beats_push": float((-side * dsum > side * gsum).mean())}

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    def epoch_summary(self) -> dict:
        """Per-epoch means over the recorded steps, each ``(epochs, K)``, all weights pooled.

        ``frac_away``, ``frac_grow``, ``grow_sq_share`` (share of Σw² held by
        the weights that grew), ``mean_abs_decay``, ``mean_abs_data``,
        ``frac_zero_data`` (weights with g = 0),
        ``decay_to_data`` (mean |d| / mean |g|), ``weight_sq_norm`` (end of
        epoch) and ``weight_sq_ratio`` (Σw² over the λ = 0 model's).
        """
        W = float(self.n_weights.sum())
        s = {k: v.sum(axis=1) for k, v in self.stats.items()}  # (S, K), summed over layers
        per_step = {
            "frac_away": s["away"] / W,
            "frac_grow": s["grow"] / W,
            "grow_sq_share": s["grow_sq"] / np.maximum(s["sq"], np.finfo(np.float64).tiny),
            "mean_abs_decay": s["abs_d"] / W,
            "mean_abs_data": s["abs_g"] / W,
            "frac_zero_data": s["zero_g"] / W,
        }
        epoch_of = self.steps // self.steps_per_epoch
        out = {k: np.stack([v[epoch_of == e].mean(axis=0) for e in range(self.epochs)]) for k, v in per_step.items()}
        out["decay_to_data"] = out["mean_abs_decay"] / np.maximum(out["mean_abs_data"], np.finfo(np.float64).tiny)
        sq = self.history["weight_sq_norm"]
        out["weight_sq_norm"] = sq
        out["weight_sq_ratio"] = sq / sq[:, :1]
        return out

    def layer_summary(self, epoch: int = -1) -> dict:
        """Like :meth:`epoch_summary` for one epoch, per layer: each ``(n_layers, K)``."""
        epoch = range(self.epochs)[epoch]
        sel = (self.steps // self.steps_per_epoch) == epoch
        s = {k: v[sel].mean(axis=0) for k, v in self.stats.items()}
        nw = self.n_weights[:, None].astype(np.float64)
        return {
            "frac_away": s["away"] / nw, "frac_grow": s["grow"] / nw,
            "grow_sq_share": s["grow_sq"] / np.maximum(s["sq"], np.finfo(np.float64).tiny),
            "mean_abs_decay": s["abs_d"] / nw, "mean_abs_data": s["abs_g"] / nw,
            "frac_zero_data": s["zero_g"] / nw,
        }

    def to_json(self) -> dict:
        summary = self.epoch_summary()
        layers = self.layer_summary()
        models = []
        for k, lmbda in enumerate(self.lmbdas):
            model = {"lmbda": lmbda}
            if self.weight_decays is not None:
                model["weight_decay"] = self.weight_decays[k]
            for name, v in summary.items():
                model[name] = [float(x) for x in v[:, k]]
            for name in ("training_cost", "training_accuracy", "evaluation_cost", "evaluation_accuracy"):
                if name in self.history:
                    model[name] = [float(x) for x in self.history[name][:, k]]
            model["last_epoch_per_layer"] = {name: [float(x) for x in v[:, k]] for name, v in layers.items()}
            model.update(self.decay_factors(k))
            whole = self.run_summary(k)
            if whole is not None:
                model["whole_run"] = whole
            models.append(model)
        return {
            "config": self.config,
            "steps_per_epoch": self.steps_per_epoch,
            "record_every": self.record_every,
            "recorded_steps_per_epoch": int(len(self.steps) // max(self.epochs, 1)),
            "n_weights_per_layer": [int(x) for x in self.n_weights],
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "reproduced": self.reproduced,
            "notes": list(self.notes),
            "models": models,
            "tracked": {
                "index": self.tracked_index.tolist(),
                "steps": [int(s) for s in self.steps],
                "w": np.round(self.tracked.astype(np.float64), 7).tolist(),
            },
        }


# ---------------------------------------------------------------- words


# ---------------------------------------------------------------- running it
# ---------------------------------------------------------------- running it


def _snapshot_epochs(epochs: int, count: int) -> list[int]:
    return sorted({int(round(x)) for x in np.linspace(0, epochs - 1, min(count, epochs))})


def _track_indices(spec: NetworkSpec, per_layer: int, seed: int):
    rng = np.random.default_rng(seed)
    track, rows = [], []
    for li, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
        flat = rng.choice(n_in * n_out, size=min(per_layer, n_in * n_out), replace=False)
        i, o = np.divmod(np.sort(flat), n_out)
        track.append((tuple(int(a) for a in i), tuple(int(b) for b in o)))
        rows += [(li, int(a), int(b)) for a, b in zip(i, o)]
    return tuple(track), np.asarray(rows, np.int64).reshape(-1, 3)


@documented()
def explain(
    dataset: str = "digits", *,
    lmbda: float | Sequence[float] | None = None, eta: float = DEFAULT_ETA, epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0, sizes: Sequence[int] | str | None = None,
    activation: str = "sigmoid", cost: str = "cross-entropy", init: str = "default", train_size: int | None = None,
    eval: str = "validation", data_dir: str | None = None,
    label_column: str = "label", standardize: bool = False, optimizer: str = "sgd", momentum: float | None = None,
    weight_decay: float | Sequence[float] | None = None, record_every: int | None = None, track: int = 4,
    snapshots: int = 4, params0: list | None = None,
    on_epoch: Callable[[int | None, dict | None], None] | None = None,
) -> ExplainResult:
    """Train on C = C0 + (λ/2n)·Σw² (coupled L2; SGD unless ``optimizer``) and record what each term does.

    ``lmbda`` (a number or a list) defaults to 1 (:data:`l2reg.options.DEFAULT_LMBDA`), or 0 with
    ``optimizer="adamw"``, whose decay is the decoupled ``weight_decay`` (a
    list: one model each, plus a wd = 0 companion). λ = 0 is added if absent,
    so that every λ compares with an unpenalized run from the same initial
    weights and batches. The other training options are
    :func:`l2reg.fronts.training.train`'s (one seed, one η, one momentum); see the
    module docstring for how d and g split a stateful optimizer's update.

    * ``record_every``: summarize every k-th step (default: about
      ``RECORDS_PER_EPOCH`` per epoch); 1 records every step.
    * ``track``: weights per layer whose trajectories are recorded.
    * ``snapshots``: epochs (spread over the run) whose full per-weight w, d
      and g are kept.
    * ``params0``: optional initial stack (K models, in the order of
      ``result.lmbdas``) instead of the seed's initial weights.
    """
    opts = ExplainOptions.from_flat(locals()).checked()
    return explain_with(opts, params0=params0, on_epoch=on_epoch)


def _companions(opts: ExplainOptions) -> tuple[list, list | None]:
    """λ of every model (λ = 0 first), and under AdamW their weight decays (wd = 0 first)."""
    if opts.optimizer == "adamw":
        wds = [0.0] + [x for x in dict.fromkeys(opts.weight_decay) if x != 0.0]
        return [0.0] * len(wds), wds
    return [0.0] + [x for x in dict.fromkeys(opts.lmbda) if x != 0.0], None


def explain_with(opts: ExplainOptions, *, params0=None, on_epoch=None) -> ExplainResult:
    """:func:`explain` for an options object (checked)."""
    from ..core.engine import Members, fit_stack
    from .prepare import decay_warnings, prepare

    prep = prepare(opts)
    for line in decay_warnings(opts, prep.n):
        log.warning("%s", line)
    interrupts.phase("data")
    spec, n, m = prep.spec, prep.n, opts.batch_size
    lmbdas, weight_decays = _companions(opts)
    members = Members.of(opts, lmbda=lmbdas, eta=opts.eta[0], weight_decay=weight_decays)
    steps_per_epoch = -(-n // m)
    every = min(opts.record_every or max(1, steps_per_epoch // RECORDS_PER_EPOCH), steps_per_epoch)
    track, track_rows = _track_indices(spec, opts.track, opts.seed[0])
    r = fit_stack(spec, prep.data.X_train, prep.data.y_train, opts, groups=[np.arange(n)],
                  group_seeds=list(opts.seed), members=members,
                  eval_sets={"evaluation": (prep.X_eval, prep.y_eval, None)}, monitor=MONITORS,
                  on_epoch=on_epoch, params0=params0, recorder=Recorder(every, track))
    snap_epochs = _snapshot_epochs(opts.epochs, opts.snapshots)
    n_rec = steps_per_epoch // every
    steps = np.concatenate([e * steps_per_epoch + np.arange(n_rec) * every + every - 1 for e in range(opts.epochs)])
    final = r.params
    w0 = [layer["w"] - acc["decay"] - acc["data"] for layer, acc in zip(final, r.rec_state)]
    config = dict(opts.to_config(), sizes=list(spec.sizes), eta=opts.eta[0], seed=opts.seed[0], lmbda=lmbdas, n=n,
                  batch_size=m, regression=prep.regression, record_every=every, snapshots=snap_epochs,
                  momentum=None if opts.momentum is None else opts.momentum[0], weight_decay=weight_decays)
    records = r.records
    return ExplainResult(
        config=config, lmbdas=lmbdas, steps_per_epoch=steps_per_epoch, record_every=every, steps=steps,
        stats={k: np.concatenate([rec["records"][0][k] for rec in records]) for k in STAT_NAMES},
        n_weights=np.array([a * b for a, b in zip(spec.sizes[:-1], spec.sizes[1:])]),
        tracked=np.concatenate([rec["records"][1] for rec in records]), tracked_index=track_rows,
        history={k: v for k, v in r.history.items()},
        snapshots={e: [{"w": w, "d": d, "g": g} for w, d, g in records[e]["snapshot"]] for e in snap_epochs},
        train_seconds=r.train_seconds, compile_seconds=r.compile_seconds, notes=list(prep.data.notes),
        final_params=final, weight_decays=weight_decays,
        cumulative=[{"w0": a, "decay": acc["decay"], "data": acc["data"]} for a, acc in zip(w0, r.rec_state)],
    )


def load_run_config(run) -> dict:
    """The config of a finished ``l2reg train`` folder (its ``metrics.json``)."""
    path = Path(run) / "metrics.json"
    if not path.is_file():
        raise DataError(f"{run} is not a finished l2reg train folder: {path} is missing.")
    try:
        meta = json.loads(path.read_text())
        return dict(meta["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path} is not an l2reg metrics.json: {e}.") from None


def _run_options(run, c: dict) -> ExplainOptions:
    """The options of ``l2reg train`` run ``run`` that explain can re-run (its first seed), or a one-line refusal."""
    try:
        opts = TrainOptions.from_config(c)
    except ConfigError as e:
        raise ConfigError(f"{Path(run) / 'metrics.json'}: {e}") from None
    if opts.penalty != "l2":
        raise ConfigError(f"explain needs a run trained with penalty l2; {run} used penalty {opts.penalty!r}.")
    unsupported = [what for what, bad in (
        (f"optimizer {opts.optimizer!r}", opts.full_batch),
        ("several momenta", len(opts.momentum or ()) > 1),
        (f"decay_scaling {opts.decay_scaling!r}", opts.decay_scaling not in (None, "lr")),
        (f"schedule {opts.schedule!r}", opts.schedule != "constant"),
        ("warm-up", bool(opts.warmup_epochs)),
        ("one λ per layer", opts.lmbda_per_layer is not None),
        ("several η", len(opts.eta) > 1),
        ("penalized biases", opts.penalize_biases),
        ("early stopping", opts.early_stopping),
    ) if bad]
    if unsupported:
        raise ConfigError(f"explain re-runs a constant-η run with one λ list and L2 on the weights only; "
                          f"{run} used {', '.join(unsupported)}.")
    flat = {name: getattr(opts, name) for name in TrainOptions.names()}
    return ExplainOptions.from_flat(dict(flat, seed=opts.seed[:1]))


def explain_run(run, *, record_every: int | None = None, track: int = 4, snapshots: int = 4,
                on_epoch=None) -> ExplainResult:
    """Explain a finished ``l2reg train`` run by training it again with recording.

    The run's ``metrics.json`` gives the options (dataset, sizes, η, λ, m,
    epochs, optimizer, seed, ...); the first seed is used when there were
    several. The re-run follows the same initial weights and mini-batches,
    so its final weights are compared with the run's ``params.npz``
    (``result.reproduced``), matched by every setting it records.
    """
    c = load_run_config(run)
    try:
        base = _run_options(run, c)
    except KeyError as e:
        raise DataError(f"{Path(run) / 'metrics.json'} lacks the option {e.args[0]!r}.") from None
    from dataclasses import replace

    opts = replace(base, record_every=record_every, track=track, snapshots=snapshots).checked()
    result = explain_with(opts, on_epoch=on_epoch)
    seeds = list(TrainOptions.from_config(c).seed)
    result.config["run"] = str(run)
    result.notes.append(f"Re-ran the recording with the config of {run} (seed {seeds[0]}).")
    if len(seeds) > 1:
        result.notes.append(f"The run had seeds {seeds}; explain used the first, {seeds[0]}.")
    result.reproduced = _compare_stored(run, result)
    if result.reproduced is not None:
        result.notes.append(
            f"The re-run's final weights match the stored params.npz to within {result.reproduced['max_abs_diff']:.2g} "
            f"(max |Δw| over {len(result.reproduced['lmbda'])} run(s)).")
    return result


def _compare_stored(run, result: ExplainResult) -> dict | None:
    """Max |Δw| between the re-run's models and the stored runs with the same settings (None if none match)."""
    path = Path(run) / "params.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        stored = {k: z[k] for k in z.files}
    c = result.config
    want = {"seed": c["seed"], "eta": c["eta"], "momentum": c.get("momentum")}
    diffs, matched = [], []
    for r in range(len(stored["w0"])):
        if any(key in stored and v is not None and not np.isclose(stored[key][r], v) for key, v in want.items()):
            continue
        key, values = ("weight_decay", result.weight_decays) if result.weight_decays is not None else (
            "lmbda", result.lmbdas)
        if key not in stored or float(stored[key][r]) not in values:
            continue
        k = values.index(float(stored[key][r]))
        diffs.append(max(float(np.max(np.abs(stored[f"w{li}"][r] - layer["w"][:, k, :])))
                         for li, layer in enumerate(result.final_params)))
        matched.append(float(stored[key][r]))
    if not diffs:
        return None
    return {"lmbda": matched, "max_abs_diff": max(diffs)}
