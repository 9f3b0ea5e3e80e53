"""Decay decisions and their audit, for any front: one row per parameter, totals, differences, Rich tables.

A front (``l2reg.torch``, ``l2reg.jax``) classifies each parameter of a
model under a policy into a :class:`Decision`; :class:`AuditResult` holds
them (and those of the policies compared) and :func:`audit_tables` renders
them for the command line. Nothing here imports a front's library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from rich.table import Table

from ..errors import ConfigTypeError


@dataclass(frozen=True)
class Decision:
    """One parameter under one policy.

    ``decay`` is True or False, or None when the parameter is in no group:
    frozen, or a policy that cannot classify it (then ``error`` says why).
    """

    name: str
    shape: tuple
    count: int
    decay: bool | None
    rule: str
    aliases: tuple = ()
    error: str = ""


@dataclass
class AuditResult:
    """What :func:`audit` found.

    ``rows``: one :class:`~l2reg.torch.groups.Decision` per distinct
    parameter under ``policy``; ``compared``: for each other policy, its
    decisions in the same order.
    """

    policy: str
    rows: list
    compared: dict = field(default_factory=dict)
    buffers: list = field(default_factory=list)  # the model's buffers (BatchNorm's statistics): never decayed
    strategy: str = ""  # how a sweep would step the members, by rule (the sweep itself measures)

    @property
    def totals(self) -> dict:
        """Tensors and scalar parameters per outcome: ``decayed``, ``not_decayed``, ``frozen``, ``unclassified``."""
        return _totals(self.rows)

    def differences(self, other: str) -> list[dict]:
        """The parameters on which ``policy`` and ``other`` decide differently."""
        out = []
        for mine, theirs in zip(self.rows, self.compared[other]):
            if mine.decay != theirs.decay:
                out.append({"name": mine.name, "shape": list(mine.shape), "count": mine.count,
                            self.policy: _word(mine), f"{self.policy}_rule": mine.error or mine.rule,
                            other: _word(theirs), f"{other}_rule": theirs.error or theirs.rule})
        return out

    def to_json(self) -> dict:
        return {
            "policy": self.policy,
            "rows": [_row_json(d) for d in self.rows],
            "totals": self.totals,
            "compared": {name: {"totals": _totals(rows), "differences": self.differences(name)}
                         for name, rows in self.compared.items()},
            "buffers": list(self.buffers),
            "strategy": self.strategy,
        }


def compare_list(compare) -> list:
    """The policies to compare with: None, one policy (a name or a callable), or a list of them."""
    others = [] if compare is None else ([compare] if isinstance(compare, str) or callable(compare) else compare)
    if not isinstance(others, Sequence):
        raise ConfigTypeError(f"compare must be a policy or a list of policies; got {compare!r}.")
    return list(others)


def _word(d: Decision) -> str:
    if d.error:
        return "error"
    return {True: "decay", False: "no decay", None: "frozen"}[d.decay]


def _row_json(d: Decision) -> dict:
    out = asdict(d)
    out["shape"] = list(d.shape)
    out["aliases"] = list(d.aliases)
    return out


def _totals(rows: list) -> dict:
    out = {k: {"tensors": 0, "params": 0} for k in ("decayed", "not_decayed", "frozen", "unclassified")}
    for d in rows:
        key = "unclassified" if d.error else {True: "decayed", False: "not_decayed", None: "frozen"}[d.decay]
        out[key]["tensors"] += 1
        out[key]["params"] += d.count
    return out


# ---------------------------------------------------------------- Rich rendering


def audit_tables(result: AuditResult) -> list:
    """Rich renderables of an audit ``result``: the per-parameter table, the totals, one table of differences per
    compared policy, the buffers and the strategy."""
    table = Table(title=f"decay groups under policy {result.policy!r}", title_justify="left")
    for name, kw in (("parameter", {"overflow": "fold"}), ("shape", {}), ("count", {"justify": "right"}),
                     ("decay", {}), ("rule", {"overflow": "fold"})):
        table.add_column(name, **kw)
    for other in result.compared:
        table.add_column(other)
    for i, d in enumerate(result.rows):
        name = d.name + (f" (= {', '.join(d.aliases)})" if d.aliases else "")
        cells = [name, "×".join(map(str, d.shape)) or "scalar", f"{d.count:,}", _mark(d), d.error or d.rule]
        for rows in result.compared.values():
            theirs = rows[i]
            cells.append(_mark(theirs) + (" [bold red]≠[/]" if theirs.decay != d.decay else ""))
        table.add_row(*cells)
    out = [table, _totals_table(result)]
    for other in result.compared:
        out.append(_differences_table(result, other))
    if result.buffers:
        out.append(_buffers_table(result))
    if result.strategy:
        out.append(f"How a sweep would step the members (by rule, nothing run): {result.strategy}.")
    return out


def _buffers_table(result: AuditResult) -> Table:
    table = Table(title=f"buffers: {len(result.buffers)}, none decayed (not parameters: no optimizer "
                        f"steps them)", title_justify="left")
    for name, kw in (("buffer", {"overflow": "fold"}), ("shape", {}), ("count", {"justify": "right"}),
                     ("rule", {"overflow": "fold"})):
        table.add_column(name, **kw)
    for b in result.buffers:
        table.add_row(b["name"], "×".join(map(str, b["shape"])) or "scalar", f"{b['count']:,}", b["rule"])
    return table


def _mark(d: Decision) -> str:
    if d.error:
        return "[red]error[/]"
    return {True: "[green]decay[/]", False: "no decay", None: "[dim]frozen[/]"}[d.decay]


def _totals_table(result: AuditResult) -> Table:
    table = Table(title="totals (tensors / parameters)", title_justify="left")
    table.add_column("policy")
    for key in ("decayed", "not_decayed", "frozen", "unclassified"):
        table.add_column(key.replace("_", " "), justify="right")
    for name, rows in {result.policy: result.rows, **result.compared}.items():
        t = _totals(rows)
        table.add_row(name, *(f"{t[k]['tensors']} / {t[k]['params']:,}" for k in t))
    return table


def _differences_table(result: AuditResult, other: str) -> Table | str:
    """The parameters ``other`` decides differently; one line where it agrees on every one."""
    diff = result.differences(other)
    if not diff:
        return f"{result.policy} vs {other}: no differences (every parameter decided alike)."
    table = Table(title=f"{result.policy} vs {other}: {len(diff)} parameter(s) decided differently",
                  title_justify="left")
    for name in ("parameter", "count", result.policy, other):
        table.add_column(name, overflow="fold")
    for row in diff:
        table.add_row(row["name"], f"{row['count']:,}", f"{row[result.policy]}: {row[f'{result.policy}_rule']}",
                      f"{row[other]}: {row[f'{other}_rule']}")
    return table
