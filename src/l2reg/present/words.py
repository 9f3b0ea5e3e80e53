"""The sentences of l2reg's results, with each run's own numbers: the presentation's words.

explain's answer (:func:`answer`) and derivation (:func:`derivation`), the
sweep's gap sentence (:func:`sweep_gap_sentence`) and its answer
(:func:`sweep_answer`, with the ``l2reg explain`` command to run), the cost
with the penalty actually used (:func:`cost_formula`), the reproduction's
Markdown table (:func:`markdown_table`). They read result objects and
return text; nothing here trains or writes.
"""

from __future__ import annotations


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _lmbda_label(x: float) -> str:
    return f"{x:.3g}"


def grid_symbol(config: dict) -> str:
    """What a sweep's grid holds, as its tables and sentences write it: ``λ``, or ``wd`` when the grid is AdamW's
    decoupled weight decay (``config["decay"] == "weight_decay"``)."""
    return "wd" if config.get("decay") == "weight_decay" else "λ"


#: The λ sweep's phrases that change meaning under AdamW's decoupled grid (before λ itself becomes wd).
_WD_PHRASES = (("d = −(ηλ/n)·w", "d = −η·wd·w"), ("−(ηλ/n)·w", "−η·wd·w"), ("What L2 did", "What weight decay did"),
               ("L2 narrows", "weight decay narrows"), ("λ/n", "wd"), ("λ", "wd"))


def in_grid_words(text: str) -> str:
    """A λ sweep's text in the words of a weight-decay grid (AdamW's decoupled wd: no λ, no λ/n)."""
    for old, new in _WD_PHRASES:
        text = text.replace(old, new)
    return text


def sweep_gap_sentence(result) -> str:
    """How much the chosen λ closed the train − test gap of the baseline (the smallest λ, normally 0); a change
    smaller than the test set's resolution (one example, 1/n_test) is "no change within noise"."""
    rows, c = result.rows, result.chosen_index
    sym = grid_symbol(result.config)
    b = getattr(result, "baseline_index", 0)  # the smallest λ at the chosen η
    base, chosen = rows[b], rows[c]
    base_name = f"{sym} = 0" if base["lmbda"] == 0 else f"the smallest {sym} in the grid ({_lmbda_label(base['lmbda'])})"
    rule = result.config["select"]
    if result.regression:
        unit, fmt = "", (lambda g: f"{g:.4g}")
        what, score = "test − train cost gap", (lambda r: f"test cost {r['test_cost']:.4g}")
    else:
        unit, fmt = " points", (lambda g: f"{100 * g:.1f}")
        what, score = "final train − test gap", (lambda r: f"final test accuracy {_percent(r['test_accuracy'])}")
    if c == b:
        return (f"Cross-validation ({rule}) chose {base_name} itself: regularization did not help here "
                f"({what} {fmt(base['gap'])}{unit}, {score(base)}).")
    g0, g1 = base["gap"], chosen["gap"]
    if result.regression:
        change = f"test cost {base['test_cost']:.4g} → {chosen['test_cost']:.4g}"
    else:
        change = f"test accuracy {_percent(base['test_accuracy'])} → {_percent(chosen['test_accuracy'])}"
    head = f"{sym} = {_lmbda_label(chosen['lmbda'])} ({rule})"
    if len(getattr(result, "etas", ())) > 1:
        head = f"{sym} = {_lmbda_label(chosen['lmbda'])} at η = {chosen['eta']:g} ({rule})"
        base_name += f" at η = {chosen['eta']:g}"
    if fmt(g0) == fmt(g1):
        return f"{head} left the {what} of {base_name} unchanged at {fmt(g0)}{unit}; {change}."
    n_test = result.config.get("n_test")
    if not result.regression and n_test and abs(g1 - g0) < (1 - 1e-6) / n_test:  # less than one test example
        return (f"{head}: no change within noise in the {what} of {base_name} ({fmt(g0)} → {fmt(g1)}{unit}, "
                f"less than one test example of {n_test}); {change}.")
    if g1 < g0:
        share = f" ({100 * (g0 - g1) / g0:.0f}% of it)" if g0 > 0 else ""
        verb = "closed" if g0 > 0 else "narrowed"
    else:
        share, verb = "", "widened"
    return f"{head} {verb} the {what} from {fmt(g0)} to {fmt(g1)}{unit}{share} compared with {base_name}; {change}."


def cost_formula(config: dict) -> str:
    """The cost the run minimized, with the penalty actually used: L2, L1, elastic net, none, AdamW's
    decoupled decay (outside the cost), one λ per layer, biases penalized or not."""
    penalty, optimizer = config.get("penalty", "l2"), config.get("optimizer", "sgd")
    w = "Σ over weights and biases" if config.get("penalize_biases") else "weights only, not biases"
    if config.get("lmbda_per_layer"):
        term = {"l2": "Σ_l (λ_l/2n)·Σ_layer l w²", "l1": "Σ_l (λ_l/n)·Σ_layer l |w|"}.get(
            penalty, "Σ_l λ_l·(its penalty over layer l)")
    else:
        rho = config.get("l1_ratio")
        term = {"l2": "(λ/2n)·Σw²", "l1": "(λ/n)·Σ|w|",
                "elastic-net": f"(λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²], ρ = {0.5 if rho is None else rho:g}"}.get(penalty)
    text = "C = C0" if term is None else f"C = C0 + {term} ({w})"
    if optimizer == "adamw":
        text += "; AdamW's decay is decoupled, outside the cost: each step w ← w − η·wd·w"
    return text


def explain_command(result, lmbda: float) -> str:
    """The ``l2reg explain`` command that shows, weight by weight, what this λ does on this run's data."""
    c = result.config
    parts = ["l2reg explain", f"--dataset {c['dataset']}"]
    if c.get("train_size") is not None:
        parts.append(f"--train-size {c['train_size']}")
    if c.get("sizes"):
        parts.append(f"--sizes {','.join(map(str, c['sizes']))}")
    for key, default in (("init", "default"), ("activation", "sigmoid"), ("cost", "cross-entropy")):
        if c.get(key, default) != default:
            parts.append(f"--{key} {c[key]}")
    eta = getattr(result, "chosen_eta", None) or c.get("eta")
    parts += [f"--lmbda {lmbda:g}", f"--eta {eta:g}", f"--batch-size {c['batch_size']}", f"--epochs {c['epochs']}"]
    return " ".join(parts)


def sweep_answer(result) -> str:
    """Is L2 regularization an addition? One sentence with this sweep's λ, η, n, and the command to see it."""
    c = result.config
    n, m = c["n"], c["batch_size"]
    eta = getattr(result, "chosen_eta", None) or c["eta"]
    lmbda = float(result.chosen_lmbda)
    note = ""
    if lmbda == 0:  # nothing to show at λ = 0: the grid's largest λ still answers the question
        lmbda = float(max(r["lmbda"] for r in result.rows))
        note = f" (CV chose λ = 0; with the grid's largest λ = {lmbda:g})"
    if c.get("decay") == "weight_decay":  # AdamW's grid: nothing enters the cost
        wd, note = float(result.chosen_lmbda), ""
        if wd == 0:
            wd, note = float(max(r["lmbda"] for r in result.rows)), " (CV chose wd = 0; with the grid's largest wd)"
        return (f"Is weight decay an addition? Not under AdamW: C = C0, nothing is added to the cost; each step "
                f"subtracts η·wd·w = {eta:g}·{wd:g}·w{note} from the weights beside Adam's step, outside its "
                f"moments (decoupled).")
    if c.get("penalty", "l2") == "none":
        return (f"This sweep has no penalty (penalty none): C = C0, nothing is added to the cost. To see what an "
                f"L2 penalty would do, weight by weight: {explain_command(result, max(lmbda, 1.0))}")
    if c.get("penalty", "l2") != "l2" or c.get("optimizer", "sgd") != "sgd" or lmbda == 0:
        head = (f"Is L2 regularization an addition? The penalty, {cost_formula(c).split(' = C0 + ', 1)[-1]}, is "
                f"added to the cost; its gradient pulls every weight toward zero through the "
                f"{c.get('optimizer', 'sgd')} update")
    else:
        f = 1 - eta * lmbda / n
        head = (f"Is L2 regularization an addition? The penalty (λ/2n)·Σw² is added to the cost; its gradient "
                f"(λ/n)·w has the sign of w, so every SGD step multiplies w by (1 − ηλ/n) = "
                f"1 − {eta:g}·{lmbda:g}/{n} = {f:.6g} < 1{note}, about {f ** -(-n // m):.4g} per epoch: "
                f"the weights decay toward zero")
    if c.get("engine") == "torch" or not c.get("sizes"):  # the user's own model: l2reg explain runs the MLP
        return f"{head}."
    return f"{head}. To see it weight by weight: {explain_command(result, lmbda)}"


def _shrink(result, k: int) -> tuple[float, float, int]:
    c = result.config
    lmbda = result.lmbdas[k]
    f = 1 - c["eta"] * lmbda / c["n"]
    steps = result.steps_per_epoch
    return f, f ** steps, steps


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def answer(result, k: int) -> list[str]:
    """The plain-language answer for model k (λ > 0), with this run's numbers."""
    c = result.config
    s = result.epoch_summary()
    f, fe, steps = _shrink(result, k)
    name, eta = c.get("optimizer", "sgd"), c["eta"]
    me, base = result.label(k), result.label(0)
    lines = [_first_bullet(result, k)]
    whole = result.run_summary(k) if hasattr(result, "run_summary") else None
    over_run = ("" if whole is None else
                f" Over the whole run ({result.epochs} epochs), {_pct(whole['frac_grew_over_run'])} of the weights "
                f"ended larger in magnitude than they started, and for {_pct(whole['frac_pull_beats_push'])} the "
                f"summed decay pull beat the summed data push (the cumulative figure).")
    lines += [
        f"In the last epoch (mean over its recorded steps) the data term pushed {_pct(s['frac_away'][-1, k])} of the "
        f"weights away from zero (sign(g) = sign(w)); the decay term pulled every weight toward zero, with mean |d| = "
        f"{s['mean_abs_decay'][-1, k]:.3g} against mean |g| = {s['mean_abs_data'][-1, k]:.3g} "
        f"(ratio of the means |d|/|g| = {s['decay_to_data'][-1, k]:.3g}).",
        f"In a step of the last epoch (mean over its recorded steps) {_pct(s['frac_grow'][-1, k])} of the weights grew "
        f"in magnitude on net (their data term outweighed the decay), and they carry "
        f"{_pct(s['grow_sq_share'][-1, k])} of Σw².{over_run}",
        f"After {result.epochs} epochs Σw² (all weights, biases excluded) is {s['weight_sq_norm'][-1, k]:.4g} with {me} "
        f"against {s['weight_sq_norm'][-1, 0]:.4g} with {base} ({s['weight_sq_ratio'][-1, k]:.3g}×), "
        f"from the same initial weights and mini-batches.",
    ]
    if s["frac_zero_data"][-1, k] > 0:
        lines.insert(3, f"In the last epoch (mean over its recorded steps) {_pct(s['frac_zero_data'][-1, k])} of the "
                        f"weights got no data term at all (g = 0, as for an input that is 0 in the whole mini-batch), "
                        f"so only the decay moved them, straight toward zero.")
    if "evaluation_accuracy" in result.history and not c.get("regression"):
        acc = result.history["evaluation_accuracy"][-1]
        lines.append(f"{c['eval'].capitalize()} accuracy after the last epoch: {_pct(acc[k])} with {me}, "
                     f"{_pct(acc[0])} with {base}.")
    if name == "sgd":
        tail = f"So the 'addition' is to the cost; on the weight it is a subtraction of (ηλ/n)·w, a multiplication by {f:.6g}."
    elif name == "adamw":
        wd = result.weight_decays[k]
        tail = (f"So nothing is added to the cost; the decay is a subtraction of η·wd·w = {eta * wd:.4g}·w, "
                f"a multiplication by {1 - eta * wd:.6g}.")
    else:
        tail = "So the 'addition' is to the cost; on the weight it is the decay term d, part of the actual update."
    lines.append(f"For comparison, with {base} in the last epoch the data term pushed {_pct(s['frac_away'][-1, 0])} "
                 f"away from zero and {_pct(s['frac_grow'][-1, 0])} of the weights grew in a step. {tail}")
    return lines


def _first_bullet(result, k: int) -> str:
    """Where the decay lives for this optimizer, and what it does per step."""
    c = result.config
    name, eta, n, lmbda = c.get("optimizer", "sgd"), c["eta"], c["n"], result.lmbdas[k]
    f, fe, steps = _shrink(result, k)
    cost = (f"The penalty is added to the cost, not to the weights: C = C0 + (λ/2n)·Σw² = C0 + {lmbda / (2 * n):.4g}·Σw². "
            f"Its gradient, (λ/n)·w = {lmbda / n:.4g}·w, has the sign of w")
    split = ("d is the split of the actual update u: d = u − g, g being what the same optimizer state "
             "would do with the data gradient alone")
    if name == "sgd":
        return (f"{cost}, and gradient descent subtracts it, so it shrinks |w| by the factor (1 − ηλ/n) = {f:.6g} "
                f"per step, about {fe:.4g} per epoch ({steps} steps).")
    if name in ("momentum", "nesterov"):
        mu = c["momentum"]
        now = (1 + mu) if name == "nesterov" else 1.0
        return (f"{cost}, and it enters the velocity v ← μ·v + ∂C/∂w (μ = {mu:g}): this step's decay term is "
                f"d = −{now:g}·η(λ/n)·w = {-now * eta * lmbda / n:.4g}·w, and what earlier steps put in v keeps "
                f"acting, in the long run about η(λ/n)/(1 − μ) = {eta * lmbda / n / (1 - mu):.4g} of w per step. "
                f"For {name}, {split}.")
    if name == "adam":
        return (f"{cost}, and it goes through Adam's moments (coupled L2): it is divided by √v̂ like the data "
                f"gradient, so weights with large gradients are decayed less. For Adam, {split}.")
    wd = result.weight_decays[k]
    return (f"AdamW's decay is decoupled, not in the cost: C = C0 (λ = 0), and each step subtracts "
            f"η·wd·w = {eta * wd:.4g}·w outside Adam's moments (wd = {wd:g}), a multiplication by "
            f"(1 − η·wd) = {1 - eta * wd:.6g} per step, about {(1 - eta * wd) ** steps:.4g} per epoch ({steps} steps). "
            f"Here d = −η·wd·w exactly and g = u − d is Adam's step on the data gradient.")


def derivation(result, k: int) -> list[str]:
    """From C to the update rule, with this run's η, λ, n and m filled in."""
    c = result.config
    lmbda, n, m, eta = result.lmbdas[k], c["n"], c["batch_size"], c["eta"]
    f, fe, steps = _shrink(result, k)
    name = c.get("optimizer", "sgd")
    if name == "adamw":
        wd = result.weight_decays[k]
        return [
            "C = C0                                              (AdamW: no penalty in the cost)",
            f"w ← w − η·(m̂/(√v̂ + ε) + wd·w)                    η = {eta:g}, wd = {wd:g}",
            f"  = w + d + g,  d = −η·wd·w = −{eta * wd:.6g}·w,  g = −η·m̂/(√v̂ + ε) (moments of ∂C0/∂w only)",
        ]
    if name != "sgd":
        rule = {"momentum": "v ← μ·v + ∂C/∂w;  w ← w − η·v",
                "nesterov": "v ← μ·v + ∂C/∂w;  w ← w − η·(∂C/∂w + μ·v)",
                "adam": "w ← w − η·m̂/(√v̂ + ε),  m̂, v̂ the moments of ∂C/∂w (coupled)"}[name]
        return [
            f"C = C0 + (λ/2n)·Σ_w w²                               λ = {lmbda:g}, n = {n}",
            f"∂C/∂w = ∂C0/∂w + (λ/n)·w = ∂C0/∂w + {lmbda / n:.6g}·w",
            f"{name}: {rule}                  η = {eta:g}, m = {m}",
            "u = the actual update;  g = the same rule and state with ∂C0/∂w alone;  d = u − g",
        ]
    return [
        f"C = C0 + (λ/2n)·Σ_w w²                               λ = {lmbda:g}, n = {n}",
        f"  = C0 + {lmbda / (2 * n):.6g}·Σ_w w²",
        f"∂C/∂w = ∂C0/∂w + (λ/n)·w = ∂C0/∂w + {lmbda / n:.6g}·w",
        "∂C/∂b = ∂C0/∂b                                      (biases are not penalized)",
        f"One SGD step on a mini-batch of m = {m} examples, η = {eta:g}, estimating ∂C0/∂w by (1/m)·Σ_x ∂C0_x/∂w:",
        "w ← w − η·[(1/m)·Σ_x ∂C0_x/∂w + (λ/n)·w]",
        "  = (1 − ηλ/n)·w − (η/m)·Σ_x ∂C0_x/∂w",
        f"  = {f:.6g}·w − {eta / m:.6g}·Σ_x ∂C0_x/∂w",
        f"  = w + d + g,  d = −{eta * lmbda / n:.6g}·w (decay term),  g = −{eta / m:.6g}·Σ_x ∂C0_x/∂w (data term)",
        f"b ← b − {eta / m:.6g}·Σ_x ∂C0_x/∂b",
        f"Per epoch ({steps} steps) the decay term alone multiplies w by {f:.6g}^{steps} = {fe:.4g}.",
    ]


def mean_sd_text(stat: dict | None, digits: int = 2, missing: str = "—") -> str:
    """``{"mean", "sd"}`` as "m ± sd" (sd None: the mean alone; no stat: ``missing``)."""
    if stat is None:
        return missing
    if stat["sd"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def markdown_table(rep) -> str:
    seeds = rep.config["seeds"]
    lines = [
        f"Test accuracy (%), mean ± sd over {len(seeds)} seed(s) {','.join(map(str, seeds))}; "
        "784-30-10, sigmoid + cross-entropy, `large` init, m = 10, η = 0.5."
        + (" **Quick smoke run: fewer images and epochs than Nielsen's, not comparable.**"
           if rep.config.get("quick") else ""),
        "",
        "| experiment | λ | final (ours) | final (Nielsen) | ours − Nielsen | peak (ours) | peak (Nielsen) "
        "| final train acc (ours) | time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in rep.experiments:
        for i, r in enumerate(e.rows):
            nf = "—" if r["nielsen_final"] is None else f"{r['nielsen_final']:.2f}"
            npk = "—" if r["nielsen_peak"] is None else f"{r['nielsen_peak']:.2f}"
            diff = "—" if r["final_minus_nielsen"] is None else f"{r['final_minus_nielsen']:+.2f}"
            time_cell = f"{e.seconds:.0f} s (both λ)" if i == 0 else ""
            lines.append(f"| {e.experiment.title} | {r['lmbda']:g} | {mean_sd_text(r['final'])} | {nf} | {diff} | "
                         f"{mean_sd_text(r['peak'])} | {npk} | {mean_sd_text(r['training_accuracy'])} | {time_cell} |")
    lines += ["", "Regularization gain (final test accuracy of λ > 0 minus λ = 0, paired by seed):", "",
              "| experiment | gain (ours) | gain (Nielsen) |", "|---|---:|---:|"]
    for e in rep.experiments:
        lines.append(f"| {e.experiment.title} | {mean_sd_text(e.gain)} | {e.nielsen_gain:+.2f} |")
    if rep.cv is not None:
        c = rep.cv
        lines += [
            "",
            f"λ chosen by {c.folds}-fold cross-validation on the "
            f"{rep.experiments[0].experiment.train_size:,} training images alone (no test data), "
            "against Nielsen's hand-picked λ (same seeds, initial weights and mini-batches):",
            "",
            "| λ | how | final test acc | peak test acc |",
            "|---:|---|---:|---:|",
            f"| {c.hand_lmbda:g} | Nielsen, by hand | {mean_sd_text(c.hand)} | "
            f"{mean_sd_text(rep.experiments[0].rows[1]['peak'])} |",
            f"| {c.lmbda:g} | {c.folds}-fold CV ({c.select}) | "
            f"{mean_sd_text(c.test)} | {mean_sd_text(c.peak)} |",
            "",
            f"Difference (CV − hand), paired by seed: {mean_sd_text(c.difference)} points. "
            f"CV run time: {c.seconds:.0f} s.",
            "",
            f"Mean {c.folds}-fold CV accuracy (%) per λ (the choice is made on these alone):",
            "",
            "| λ | " + " | ".join(f"{lm:g}" for lm in c.grid) + " |",
            "|---" * (len(c.grid) + 1) + "|",
            "| CV acc | " + " | ".join(
                ("**" if lm == c.lmbda else "") + f"{m:.1f}" + ("**" if lm == c.lmbda else "")
                for lm, m in zip(c.grid, c.cv_mean)) + " |",
        ]
    return "\n".join(lines) + "\n"
