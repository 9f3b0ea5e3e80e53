"""Reports: the self-contained sweep page, its plots, the Rich table and the gap sentence."""

import re
from types import SimpleNamespace

import pytest
from rich.console import Console

from l2reg import report
from l2reg import sweep as S

from jax_cache import compilation_cache  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("compilation_cache")

PLOTS = ("sweep-path", "sweep-learning-curves", "sweep-weight-norms", "sweep-weight-histograms")


@pytest.fixture(scope="module")
def result():
    return S.sweep(train_size=120, epochs=3, lmbdas=[0.0, 0.3, 3.0, 30.0], folds=3, seed=0)


def test_report_contains_every_plot_and_no_network_reference(result, tmp_path):
    result.save(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for fig_id in PLOTS:
        m = re.search(rf'<figure id="{fig_id}"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert m, fig_id
        assert len(m.group(1)) > 2000  # a real image, not an empty one
    # opens with no network access: no URL at all, no external script, stylesheet or font
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert "used only for this final report" in page
    assert f"Chosen λ = {result.chosen_lmbda:.3g}" in page


def test_without_lmbda_zero_or_per_epoch_records_every_plot_is_there_and_the_path_has_one_log_axis():
    r = S.sweep(train_size=120, epochs=2, lmbdas=[0.1, 1.0], folds=2, monitor=())
    page = report.sweep_report_html(r)
    for fig_id in PLOTS:
        assert f'<figure id="{fig_id}">' in page
    fig = report.sweep_path_figure(r)
    assert len(fig.axes) == 1 and fig.axes[0].get_xscale() == "log"
    assert "the smallest λ in the grid (0.1)" in r.gap_summary()


def test_path_plot_puts_lmbda_zero_on_its_own_axis(result):
    fig = report.sweep_path_figure(result)
    zero_ax, log_ax = fig.axes
    assert [t.get_text() for t in zero_ax.get_xticklabels()] == ["0"]
    assert log_ax.get_xscale() == "log"


def test_rich_table_has_one_row_per_lmbda_and_marks_the_choice(result):
    console = Console(width=100, record=True)
    console.print(report.sweep_table(result))
    text = console.export_text()
    assert "▶min" in text
    assert sum(1 for line in text.splitlines() if line.strip().endswith(("refit", "folds"))) == len(result.rows)
    assert "fold models" in text


def test_html_page_escapes_and_keeps_sections():
    page = report.html_page("a <b> & c", [(None, "<p>x</p>"), ("Part <2>", "<p>y</p>")])
    assert "<title>a &lt;b&gt; &amp; c</title>" in page
    assert "<h2>Part &lt;2&gt;</h2>" in page and "<p>x</p>" in page and "<p>y</p>" in page


def _fake(gaps, tests, chosen, lmbdas=(0.0, 1.0), select="min"):
    rows = [dict(lmbda=l, gap=g, test_accuracy=t, training_accuracy=t + g) for l, g, t in zip(lmbdas, gaps, tests)]
    return SimpleNamespace(rows=rows, chosen_index=chosen, regression=False, config={"select": select})


GAP_CASES = [
    (_fake([0.05, 0.02], [0.90, 0.93], 1), "λ = 1 (min) closed the train − test gap from 5.0 to 2.0 points (60% of it) "
                                            "compared with λ = 0; test accuracy 90.00% → 93.00%."),
    (_fake([0.05, 0.07], [0.90, 0.89], 1), "widened the train − test gap from 5.0 to 7.0 points"),
    (_fake([0.05, 0.05], [0.90, 0.91], 1), "left the train − test gap of λ = 0 unchanged at 5.0 points"),
    (_fake([0.05, 0.02], [0.90, 0.93], 0), "chose λ = 0 itself: regularization did not help here"),
    (_fake([0.05, 0.02], [0.90, 0.93], 1, lmbdas=(0.5, 2.0)), "compared with the smallest λ in the grid (0.5)"),
]


@pytest.mark.parametrize("fake,want", GAP_CASES)
def test_gap_sentence(fake, want):
    sentence = report.sweep_gap_sentence(fake)
    assert want in sentence and "\n" not in sentence
