"""Report text that needs no run: the HTML page frame and the sweep's gap sentence.

Pages of real runs, their figures and the λ explorer in a browser are tested
in test_report_pages.py.
"""

from types import SimpleNamespace

import pytest

from l2reg.present import report


def test_html_page_escapes_and_keeps_sections():
    page = report.html_page("a <b> & c", [(None, "<p>x</p>"), ("Part <2>", "<p>y</p>")])
    assert "<title>a &lt;b&gt; &amp; c</title>" in page
    assert "<h2>Part &lt;2&gt;</h2>" in page and "<p>x</p>" in page and "<p>y</p>" in page


def _fake(gaps, tests, chosen, lmbda=(0.0, 1.0), select="min", **config):
    rows = [dict(lmbda=x, gap=g, test_accuracy=t, training_accuracy=t + g) for x, g, t in zip(lmbda, gaps, tests)]
    return SimpleNamespace(rows=rows, chosen_index=chosen, regression=False, config={"select": select, **config})


GAP_CASES = [
    (_fake([0.05, 0.02], [0.90, 0.93], 1), "λ = 1 (min) closed the final train − test gap from 5.0 to 2.0 points (60% of it) "
                                            "compared with λ = 0; test accuracy 90.00% → 93.00%."),
    (_fake([0.05, 0.07], [0.90, 0.89], 1), "widened the final train − test gap from 5.0 to 7.0 points"),
    (_fake([0.05, 0.05], [0.90, 0.91], 1), "left the final train − test gap of λ = 0 unchanged at 5.0 points"),
    (_fake([0.05, 0.02], [0.90, 0.93], 0), "chose λ = 0 itself: regularization did not help here"),
    (_fake([0.05, 0.02], [0.90, 0.93], 1, lmbda=(0.5, 2.0)), "compared with the smallest λ in the grid (0.5)"),
    # the test set's resolution: 1/n_test = 0.04 with 25 examples; a move of 0.03 is less than one example
    (_fake([0.05, 0.02], [0.90, 0.92], 1, n_test=25), "λ = 1 (min): no change within noise in the final train − "
                                                      "test gap of λ = 0 (5.0 → 2.0 points, less than one test "
                                                      "example of 25)"),
    (_fake([0.05, 0.01], [0.90, 0.92], 1, n_test=25), "closed the final train − test gap from 5.0 to 1.0 points"),
    (_fake([0.05, 0.02], [0.90, 0.93], 1, decay="weight_decay"), "wd = 1 (min) closed the final train − test gap "
                                                                 "from 5.0 to 2.0 points (60% of it) compared with "
                                                                 "wd = 0"),
]


@pytest.mark.parametrize("fake,want", GAP_CASES)
def test_gap_sentence(fake, want):
    sentence = report.sweep_gap_sentence(fake)
    assert want in sentence and "\n" not in sentence


# ---------------------------------------------------------------- issue 24: the penalty used, the sweep's answer


@pytest.mark.parametrize("config,want,not_want", [
    ({"penalty": "l2"}, "C = C0 + (λ/2n)·Σw² (weights only, not biases)", "Σ|w|"),
    ({"penalty": "l1"}, "C = C0 + (λ/n)·Σ|w|", "Σw²"),
    ({"penalty": "elastic-net", "l1_ratio": 0.3}, "(λ/n)·[ρ·Σ|w| + ((1−ρ)/2)·Σw²], ρ = 0.3", "(λ/2n)"),
    ({"penalty": "none"}, "C = C0", "λ"),
    ({"penalty": "l2", "optimizer": "adamw", "lmbda": [0.0]}, "decoupled, outside the cost", "(λ/2n)"),
    ({"penalty": "l2", "penalize_biases": True}, "weights and biases", "not biases"),
])
def test_cost_formula_names_the_penalty_actually_used(config, want, not_want):
    if config.get("optimizer") == "adamw":  # AdamW runs with λ = 0 by default: penalty none in the cost
        config = dict(config, penalty="none")
    text = report.cost_formula(config)
    assert want in text and not_want not in text


def _fake_sweep(chosen, grid=(0.0, 1.0, 5.0), eta=0.5, n=1000, m=10, penalty="l2"):
    rows = [dict(lmbda=x, gap=0.01, test_accuracy=0.9, training_accuracy=0.91) for x in grid]
    config = dict(n=n, batch_size=m, eta=eta, epochs=30, dataset="digits", train_size=None, sizes=[64, 30, 10],
                  penalty=penalty, optimizer="sgd", select="min")
    return SimpleNamespace(rows=rows, chosen_lmbda=chosen, chosen_eta=eta, config=config, regression=False)


def test_sweep_answer_fills_in_this_runs_numbers_and_the_explain_command():
    import re

    text = report.sweep_answer(_fake_sweep(5.0))
    assert "added to the cost" in text and "(λ/n)·w has the sign of w" in text and "\n" not in text
    factor = float(re.search(r"\(1 − ηλ/n\) = 1 − 0\.5·5/1000 = ([0-9.]+) < 1", text).group(1))
    assert factor == pytest.approx(1 - 0.5 * 5 / 1000, abs=1e-6)
    per_epoch = float(re.search(r"about ([0-9.]+) per epoch", text).group(1))
    assert per_epoch == pytest.approx(factor ** 100, rel=1e-3)  # ⌈1000/10⌉ steps
    assert text.endswith("l2reg explain --dataset digits --sizes 64,30,10 --lmbda 5 --eta 0.5 --batch-size 10 "
                         "--epochs 30")
    zero = report.sweep_answer(_fake_sweep(0.0))
    assert "CV chose λ = 0; with the grid's largest λ = 5" in zero and "--lmbda 5 " in zero
    assert "Σ|w|" in report.sweep_answer(_fake_sweep(1.0, penalty="l1"))


@pytest.fixture(scope="module")
def l1_train():
    from l2reg.fronts.training import train

    return train("digits", train_size=200, epochs=1, lmbda=[0.0, 1.0], penalty="l1", sizes=[64, 8, 10], monitor=())


def test_train_table_footer_and_histogram_legend(l1_train):
    """The footer names the L1 penalty the run used; the weights legend gives the table's all-layer Σw²."""
    import re

    import matplotlib

    matplotlib.use("Agg")
    from l2reg.present import plots_train

    caption = str(report.train_table(l1_train).caption)
    assert "C = C0 + (λ/n)·Σ|w|" in caption and "(λ/2n)" not in caption
    fig = plots_train.train_weight_histogram_figure(l1_train)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    table = {f"{run['weight_sq_norm'][-1]:.4g}" for run in l1_train.runs}
    assert texts and {re.search(r"Σw² = ([0-9.e+]+) \(all layers\)", t)[1] for t in texts} <= table
