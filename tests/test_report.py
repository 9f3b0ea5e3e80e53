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


def _fake(gaps, tests, chosen, lmbda=(0.0, 1.0), select="min"):
    rows = [dict(lmbda=x, gap=g, test_accuracy=t, training_accuracy=t + g) for x, g, t in zip(lmbda, gaps, tests)]
    return SimpleNamespace(rows=rows, chosen_index=chosen, regression=False, config={"select": select})


GAP_CASES = [
    (_fake([0.05, 0.02], [0.90, 0.93], 1), "λ = 1 (min) closed the train − test gap from 5.0 to 2.0 points (60% of it) "
                                            "compared with λ = 0; test accuracy 90.00% → 93.00%."),
    (_fake([0.05, 0.07], [0.90, 0.89], 1), "widened the train − test gap from 5.0 to 7.0 points"),
    (_fake([0.05, 0.05], [0.90, 0.91], 1), "left the train − test gap of λ = 0 unchanged at 5.0 points"),
    (_fake([0.05, 0.02], [0.90, 0.93], 0), "chose λ = 0 itself: regularization did not help here"),
    (_fake([0.05, 0.02], [0.90, 0.93], 1, lmbda=(0.5, 2.0)), "compared with the smallest λ in the grid (0.5)"),
]


@pytest.mark.parametrize("fake,want", GAP_CASES)
def test_gap_sentence(fake, want):
    sentence = report.sweep_gap_sentence(fake)
    assert want in sentence and "\n" not in sentence
