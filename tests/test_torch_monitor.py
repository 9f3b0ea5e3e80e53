"""DecayMonitor against closed forms on a hand-set linear model, and against the step optimizer.step() took.

Model: y = W·x + b with the quadratic cost C0 = (1/2m)·Σ_x ‖W·x + b − t‖², whose
batch gradient is ∂C0/∂W = (1/m)·Σ_x (W·x + b − t)·xᵀ, ∂C0/∂b = (1/m)·Σ_x (W·x + b − t);
W is decayed (coefficient wd), b is not (l2reg's default policy). Float64 throughout.
"""

import html
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from l2reg.errors import ConfigError, ConfigTypeError  # noqa: E402
from l2reg.models.monitor_summary import html_report  # noqa: E402
from l2reg.torch import DecayMonitor, decay_groups  # noqa: E402

W0 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
B0 = [0.1, -0.2]
X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 1.5], [-2.0, 1.0, 0.25], [0.0, 1.0, 1.0]], dtype=torch.float64)
T = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [0.5, 0.5]], dtype=torch.float64)
BATCHES = [slice(0, 2), slice(2, 4), slice(0, 4)]
LR, WD, MU = 0.1, 0.3, 0.9

OPTIMIZERS = {
    "sgd": lambda g: torch.optim.SGD(g, lr=LR),
    "momentum": lambda g: torch.optim.SGD(g, lr=LR, momentum=MU),
    "nesterov": lambda g: torch.optim.SGD(g, lr=LR, momentum=MU, nesterov=True),
    "adam": lambda g: torch.optim.Adam(g, lr=LR),
    "adamw": lambda g: torch.optim.AdamW(g, lr=LR),
}


def _model():
    model = nn.Linear(3, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W0))
        model.bias.copy_(torch.tensor(B0))
    return model


def _grads(W, b, s):
    """The closed-form batch gradient of C0 at (W, b) on batch ``s``."""
    r = X[s] @ W.T + b - T[s]  # (m, 2)
    return r.T @ X[s] / len(r), r.mean(0)


def _run(optimizer, *, monitor=True, steps=len(BATCHES), **kw):
    model = _model()
    opt = OPTIMIZERS[optimizer](decay_groups(model, WD))
    mon = DecayMonitor(opt, model=model, keep_terms=True, **kw) if monitor else None
    seen = []
    for s in BATCHES[:steps]:
        W, b = model.weight.detach().clone(), model.bias.detach().clone()
        opt.zero_grad()
        (0.5 * ((model(X[s]) - T[s]) ** 2).sum(1).mean()).backward()
        opt.step()
        seen.append({"W": W, "b": b, "G": _grads(W, b, s), "uW": model.weight.detach() - W,
                     "terms": None if mon is None else {k: dict(v) for k, v in mon.terms.items()}})
    return model, opt, mon, seen


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_terms_sum_to_the_step_taken(optimizer):
    _, _, _, seen = _run(optimizer)
    for step in seen:
        t = step["terms"]
        np.testing.assert_allclose(t["weight"]["d"] + t["weight"]["g"], step["uW"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(t["weight"]["u"], step["uW"], rtol=1e-12, atol=1e-15)
        assert torch.count_nonzero(t["bias"]["d"]) == 0  # b is not decayed


def _closed_forms(optimizer, seen):
    """(d, g) of W at each step, from the update rules written out by hand."""
    out, buf = [], None
    for step in seen:
        W, (GW, _) = step["W"], step["G"]
        full = GW + WD * W  # the coupled gradient of C0 + (wd/2)·‖W‖²
        if optimizer == "sgd":
            out.append((-LR * WD * W, -LR * GW))
        elif optimizer in ("momentum", "nesterov"):
            prev = torch.zeros_like(W) if buf is None else MU * buf
            buf = full if buf is None else MU * buf + full
            if optimizer == "momentum":
                out.append((-LR * WD * W, -LR * (prev + GW)))
            else:  # u = −lr·(g' + μ·buf): the data part is what GW alone would give from the same buffer
                out.append((-LR * (1 + MU) * WD * W, -LR * (GW + MU * (prev + GW))))
        else:
            break
    return out


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_sgd_terms_match_the_closed_forms(optimizer):
    _, _, _, seen = _run(optimizer)
    for step, (d, g) in zip(seen, _closed_forms(optimizer, seen)):
        np.testing.assert_allclose(step["terms"]["weight"]["d"], d, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(step["terms"]["weight"]["g"], g, rtol=1e-10, atol=1e-14)


def test_adam_and_adamw_first_step_closed_forms():
    eps = 1e-8
    for optimizer in ("adam", "adamw"):
        _, _, _, (step, *_) = _run(optimizer, steps=1)
        W, (GW, _) = step["W"], step["G"]
        # Adam's first step is −lr·ĝ/(|ĝ| + ε) for the gradient ĝ it is given.
        g = -LR * GW / (GW.abs() + eps)
        if optimizer == "adam":  # coupled: ĝ = ∂C0/∂W + wd·W goes through the moments
            u = -LR * (GW + WD * W) / ((GW + WD * W).abs() + eps)
            d = u - g
        else:  # decoupled: outside the moments
            d = -LR * WD * W
        np.testing.assert_allclose(step["terms"]["weight"]["g"], g, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(step["terms"]["weight"]["d"], d, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_monitoring_does_not_change_the_training(optimizer):
    watched, opt_a, _, _ = _run(optimizer)
    plain, opt_b, _, _ = _run(optimizer, monitor=False)
    assert torch.equal(watched.weight, plain.weight) and torch.equal(watched.bias, plain.bias)
    for p_a, p_b in zip(watched.parameters(), plain.parameters()):
        for key, v in opt_a.state[p_a].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(opt_b.state[p_b][key]))


def test_summary_numbers_and_timescale():
    _, _, mon, seen = _run("sgd", steps=1, steps_per_epoch=4, epochs=3)
    s = mon.summary()
    t = seen[0]["terms"]["weight"]
    group = s["groups"][0]
    assert group["weight_decay"] == WD and group["split"] == "closed"
    assert group["frac_away"] == pytest.approx(float((t["g"] * t["w"] > 0).double().mean()))
    assert group["mean_abs_decay"] == pytest.approx(float(t["d"].abs().mean()))
    assert group["mean_abs_data"] == pytest.approx(float(t["g"].abs().mean()))
    assert group["timescale"]["tau_iter"] == pytest.approx(1 / (LR * WD))
    assert group["timescale"]["tau_epoch"] == pytest.approx(1 / (LR * WD) / 4)
    assert any("exceeds the run's 3 epochs" in w for w in group["warnings"])  # τ_epoch = 8.3
    assert s["groups"][1]["weight_decay"] == 0 and s["groups"][1]["split"] == "none"
    layer = {x["name"]: x for x in s["layers"]}["weight"]
    assert layer["weight_norm_first"] == pytest.approx(float(torch.tensor(W0).norm()))
    assert s["history"]["step"] == [0]
    json.dumps(s, allow_nan=False)


@pytest.mark.parametrize("optimizer,tau_iter", [
    ("momentum", (1 - MU) / (LR * WD)), ("nesterov", (1 - MU) / (LR * WD)), ("adamw", 1 / (LR * WD)), ("adam", None),
])
def test_timescale_per_optimizer(optimizer, tau_iter):
    _, _, mon, _ = _run(optimizer, steps=1)
    ts = mon.summary()["groups"][0]["timescale"]
    assert ts["tau_iter"] == (None if tau_iter is None else pytest.approx(tau_iter))


def test_record_every_unused_parameters_and_remove(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).double()
    opt = torch.optim.SGD(decay_groups(model, 0.01), lr=0.1)
    mon = DecayMonitor(opt, model=model, record_every=3)
    for _ in range(7):
        opt.zero_grad()
        model[0](X).pow(2).mean().backward()  # model[1] gets no gradient
        opt.step()
    assert mon.recorded_steps == [0, 3, 6] and mon.steps == 7
    s = mon.summary()
    assert {x["name"]: x["n_weights"] for x in s["layers"]}["1.weight"] == 0
    mon.remove()
    opt.step()
    assert mon.steps == 7
    data = json.loads(mon.write_json(tmp_path).read_text())
    assert data["recorded_steps"] == 3 and data["answer"]
    page = mon.write_html(tmp_path / "m.html").read_text()
    assert page.lower().startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "What weight decay did" in page and 'id="monitor-away"' in page  # the explain report's page


def _adamw_on_everything(model):
    """``AdamW(model.parameters(), weight_decay=0.01)``, the habit that decays biases and norm scales too."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    mon = DecayMonitor(opt, model=model)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
    return mon


def test_decayed_biases_and_norm_scales_are_one_note_naming_decay_groups(caplog):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with caplog.at_level("WARNING", logger="l2reg.torch"):
        mon = _adamw_on_everything(model)
    notes = [r.getMessage() for r in caplog.records if "l2reg.torch.decay_groups" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0] and "0.bias (bias)" in notes[0] and "LayerNorm" in notes[0]
    s = mon.summary()
    assert s["decay_note"] == notes[0] == s["answer"][0]
    assert html.escape(notes[0]) in html_report(s)


def test_weights_only_groups_have_no_note(caplog):
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    with caplog.at_level("WARNING", logger="l2reg.torch"):
        opt = torch.optim.AdamW(decay_groups(model, 0.01), lr=0.01)
        mon = DecayMonitor(opt, model=model)
    assert mon.decay_note is None and mon.summary()["decay_note"] is None and not caplog.records


def test_the_report_tables_speak_words_not_json_keys():
    page = html_report(_adamw_on_everything(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)))
                       .summary())
    for key in ("frac_away", "timescale_text", "weight_norm_first", "mean_abs_decay", "n_weights", "decay_to_data"):
        assert key not in page, key
    for words in ("g away from 0", "|w| grew", "mean |d|", "mean |g|", "‖w‖ first", "decay timescale"):
        assert html.escape(words) in page, words


@pytest.mark.parametrize("args,error,message", [
    (("sgd",), ConfigTypeError, "optimizer must be a torch.optim.Optimizer; got str."),
    ((torch.optim.LBFGS([nn.Parameter(torch.zeros(2))]),), ConfigError,
     "DecayMonitor needs an optimizer with a weight_decay setting; LBFGS group 0 has none."),
])
def test_bad_input_is_one_line(args, error, message):
    with pytest.raises(error) as info:
        DecayMonitor(*args)
    assert str(info.value) == message


def test_a_group_added_later_is_recorded_from_then_on():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)).double()
    opt = torch.optim.SGD(decay_groups(model[0], 0.01), lr=0.1)
    mon = DecayMonitor(opt, model=model)
    for step in range(3):
        if step == 2:
            opt.add_param_group({"params": list(model[1].parameters()), "weight_decay": 0.02,
                                 "param_names": ["1.weight", "1.bias"]})
        opt.zero_grad()
        model(X).pow(2).mean().backward()
        opt.step()
    s = mon.summary()
    assert [x["name"] for x in s["layers"]] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert s["history"]["weight_norm"]["1.weight"][:2] == [None, None] and s["groups"][2]["weight_decay"] == 0.02


@pytest.mark.parametrize("first", ["json", "html"])
def test_write_into_a_folder_that_does_not_exist_keeps_both_files(tmp_path, first):
    _, _, mon, _ = _run("sgd", steps=1)
    folder = tmp_path / "runs" / "monitor"  # neither exists yet
    writers = {"json": mon.write_json, "html": mon.write_html}
    for kind in (first, {"json": "html", "html": "json"}[first]):
        assert writers[kind](folder) == folder / f"decay_monitor.{kind}"
    assert folder.is_dir() and sorted(p.name for p in folder.iterdir()) == ["decay_monitor.html", "decay_monitor.json"]
    assert json.loads((folder / "decay_monitor.json").read_text())["recorded_steps"] == 1
    assert mon.write_json(tmp_path / "new" / "m.json") == tmp_path / "new" / "m.json"  # a file name: that file
    assert mon.write_html(tmp_path / "new" / "m.htm").read_text().lower().startswith("<!doctype html>")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        mon.write_html(tmp_path / "new" / "m.json")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_step_with_a_closure_that_backpropagates_and_clips(optimizer):
    """``opt.step(closure)``, as Lightning calls it: the gradients exist (clipped) only inside step()."""
    model = _model()
    opt = OPTIMIZERS[optimizer](decay_groups(model, WD))
    mon = DecayMonitor(opt, model=model, keep_terms=True)
    for s in BATCHES:
        W = model.weight.detach().clone()
        opt.zero_grad(set_to_none=True)
        seen = {}

        def closure():
            loss = 0.5 * ((model(X[s]) - T[s]) ** 2).sum(1).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            seen["grad"] = model.weight.grad.detach().clone()
            return loss

        opt.step(closure)
        t = mon.terms["weight"]
        np.testing.assert_allclose(t["d"] + t["g"], model.weight.detach() - W, rtol=1e-12, atol=1e-15)
        if optimizer in ("sgd", "momentum", "adamw"):  # d = −lr·wd·w; for sgd g = −lr·(clipped gradient)
            np.testing.assert_allclose(t["d"], -LR * WD * W, rtol=1e-10, atol=1e-15)
        if optimizer == "sgd":
            np.testing.assert_allclose(t["g"], -LR * seen["grad"], rtol=1e-12, atol=1e-15)
    assert mon.recorded_steps == [0, 1, 2]
