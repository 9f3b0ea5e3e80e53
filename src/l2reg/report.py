"""The tables, pages and figures of l2reg's results (``from l2reg import report``; docs/reports.md).

The presentation layer's public face: :mod:`l2reg.present.report` (terminal
tables and HTML reports), :mod:`l2reg.present.pages` (figures and pages),
:mod:`l2reg.present.words` (the sentences), :mod:`l2reg.present.save`
(writing a result's folder).
"""

from .present.report import *  # noqa: F401,F403
from .present.report import TEST_SET_NOTE, figure_png, html_page, write_figures  # noqa: F401
from .present.save import save  # noqa: F401
from .present.words import answer, cost_formula, derivation, sweep_answer, sweep_gap_sentence  # noqa: F401
