"""Presenting results: Rich tables for the terminal (plots come with the sweep)."""

from __future__ import annotations

from rich.table import Table


def _fmt(values, kind: str) -> str:
    if not values:
        return "-"
    v = values[-1]
    if kind == "acc":
        return f"{100 * v:.2f}%"
    return f"{v:.4g}"


def train_table(result) -> Table:
    """One row per run (λ, seed): final costs, accuracies and Σw²."""
    multi_seed = len({r["seed"] for r in result.runs}) > 1
    regression = result.config.get("regression", False)
    table = Table(title=f"l2reg train: {result.config['dataset']}, n = {result.config['n']}, "
                        f"{result.config['epochs']} epochs", title_justify="left")
    table.add_column("λ", justify="right")
    if multi_seed:
        table.add_column("seed", justify="right")
    table.add_column("train cost", justify="right")
    if not regression:
        table.add_column("train acc", justify="right")
    table.add_column(f"{result.config['eval']} cost", justify="right")
    if not regression:
        table.add_column(f"{result.config['eval']} acc", justify="right")
    table.add_column("Σw²", justify="right")
    for r in result.runs:
        row = [f"{r['lmbda']:g}"]
        if multi_seed:
            row.append(str(r["seed"]))
        row.append(_fmt(r["training_cost"], "cost"))
        if not regression:
            row.append(_fmt(r["training_accuracy"], "acc"))
        row.append(_fmt(r["evaluation_cost"], "cost"))
        if not regression:
            row.append(_fmt(r["evaluation_accuracy"], "acc"))
        row.append(_fmt(r["weight_sq_norm"], "cost"))
        table.add_row(*row)
    return table
