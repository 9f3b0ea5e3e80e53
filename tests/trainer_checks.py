"""What tests/test_torch_hf.py and tests/test_torch_lightning.py check of a DecayMonitor inside a real trainer.

:class:`StepLog` watches the same optimizer as the monitor, with its own
step hooks registered after the monitor's: before each step it keeps w and
the scheduler's lr of every group, after it the step the parameter actually
took (w after − w before), the gradient the optimizer used (clipped, if the
trainer clips) and a copy of the monitor's terms of that step
(``keep_terms``). :func:`check_steps` then compares them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch


EPS32 = float(torch.finfo(torch.float32).eps)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train faster, and steadier on a shared 2-core machine, on one torch thread; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class StepLog:
    """The steps ``optimizer`` takes, seen independently of ``monitor`` (module docstring)."""

    def __init__(self, optimizer, monitor, scheduler):
        monitor.keep_terms = True
        self.optimizer, self.monitor, self.scheduler = optimizer, monitor, scheduler
        self.steps: list[dict] = []
        self._w0: dict = {}
        self._lr: list = []
        optimizer.register_step_pre_hook(self._before)
        optimizer.register_step_post_hook(self._after)

    @torch.no_grad()
    def _before(self, optimizer, args, kwargs):
        self._w0 = {id(p): p.detach().clone() for g in optimizer.param_groups for p in g["params"]}
        self._lr = list(self.scheduler.get_last_lr())  # the lr this step is taken at

    @torch.no_grad()
    def _after(self, optimizer, args, kwargs):
        mon = self.monitor
        recorded = bool(mon.recorded_steps) and mon.recorded_steps[-1] == mon.steps - 1
        params = {}
        for (gi, name), p in zip(mon.names, (p for g in optimizer.param_groups for p in g["params"])):
            if p.grad is not None:
                params[name] = {"group": gi, "w": self._w0[id(p)], "u": p.detach() - self._w0[id(p)],
                                "grad": p.grad.detach().clone()}
        self.steps.append({"lr": self._lr, "hyper": mon.group_hyper[-1] if recorded else None, "params": params,
                           "terms": {k: dict(v) for k, v in mon.terms.items()} if recorded else None})


def check_steps(log: StepLog, n_steps: int, *, exact_decay: bool, sgd_grad: bool = False, max_norm=None) -> None:
    """Every optimizer step recorded once; d + g is the step taken; d = −lr_t·wd·w where the split is exact.

    ``exact_decay``: d = −lr_t·wd·w (decoupled AdamW, SGD, SGD with
    momentum), lr_t the scheduler's lr at that step; ``sgd_grad``: plain SGD,
    g = −lr_t·(the gradient the step used); ``max_norm``: the trainer clipped
    that gradient to this total norm.
    """
    mon = log.monitor
    assert len(mon.records) == len(log.steps) == mon.steps == n_steps
    assert mon.recorded_steps == list(range(n_steps))
    wds = [g["weight_decay"] for g in log.optimizer.param_groups]
    assert any(wd > 0 for wd in wds) and any(wd == 0 for wd in wds)
    for step in log.steps:
        assert [lr for lr, _ in step["hyper"]] == pytest.approx(step["lr"], rel=1e-12)  # the monitor's lr_t
        for name, seen in step["params"].items():
            t, gi = step["terms"][name], seen["group"]
            lr, wd = step["lr"][gi], wds[gi]
            _close(t["d"] + t["g"], seen["u"], seen, name)
            if wd == 0:
                assert torch.count_nonzero(t["d"]) == 0, name
            elif exact_decay:
                _close(t["d"], -lr * wd * seen["w"], seen, name)
            elif lr > 0:  # coupled Adam: the decay goes through the moments, no closed form, but it is there
                assert torch.count_nonzero(t["d"]) > 0, name
            if sgd_grad:
                _close(t["g"], -lr * seen["grad"], seen, name)
        if max_norm is not None:
            total = float(torch.sqrt(sum((s["grad"].double() ** 2).sum() for s in step["params"].values())))
            assert total <= max_norm * 1.001, total


def expected_scalars(log: StepLog, steps) -> dict:
    """``decay/d_over_g``, ``decay/frac_away`` and ``decay/w_norm`` over ``steps`` (indices), from the terms alone."""
    wds = [g["weight_decay"] for g in log.optimizer.param_groups]
    abs_d = abs_g = away = numel = 0.0
    for i in steps:
        for name, seen in log.steps[i]["params"].items():
            if wds[seen["group"]] > 0:
                t = log.steps[i]["terms"][name]
                abs_d += float(t["d"].double().abs().sum())
                abs_g += float(t["g"].double().abs().sum())
                away += float((t["g"] * seen["w"] > 0).sum())
                numel += seen["w"].numel()
    last = log.steps[steps[-1]]["params"].values()
    w_norm = float(torch.sqrt(sum((s["w"].double() ** 2).sum() for s in last if wds[s["group"]] > 0)))
    return {"decay/d_over_g": abs_d / abs_g, "decay/frac_away": away / numel, "decay/w_norm": w_norm}


def _close(actual, expected, seen, name) -> None:
    """Equal to the float32 rounding of the weights: a step is w1 − w0, so it is exact to eps·(|w| + |u|)."""
    err = (actual - expected).abs()
    bound = 4 * EPS32 * (seen["w"].abs() + seen["u"].abs()) + 1e-12
    assert bool((err <= bound).all()), (name, float(err.max()), float(expected.abs().max()))


CHROMIUM = os.environ.get("L2REG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def console_errors(paths: list[Path]) -> dict[str, list[str]]:
    """Open each page in Debian's Chromium (as tests/test_report_pages.py does); its console errors, by name."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium, or set $L2REG_CHROMIUM)")
    out = {}
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(CHROMIUM) or CHROMIUM, args=CHROMIUM_ARGS)
        for path in paths:
            page = browser.new_page()
            errors = out.setdefault(path.name, [])
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.resolve().as_uri(), wait_until="load")
            assert "What weight decay did" in page.title() + page.content()
            page.close()
        browser.close()
    return out
