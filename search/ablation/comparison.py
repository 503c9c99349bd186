"""The comparison of an ablation grid: one row per cell, the best cell per metric marked.

``comparison.md`` bolds and stars the best value of each metric column;
``comparison.csv`` has the same columns plus ``best_for`` (the metrics a cell wins);
``comparison.png`` plots the metrics that lie in [0, 1]. Latency columns (``_ms``)
are best when lowest, every other metric when highest.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.evaluation.markdown import fmt, table


def lower_is_better(metric: str) -> bool:
    """Latencies (``..._ms``) improve downwards; every other metric upwards."""
    return metric.endswith("_ms")


def best_cells(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, set[int]]:
    """For each metric, the indices of the rows holding its best value (ties share it)."""
    best: dict[str, set[int]] = {}
    for name in metrics:
        values = {i: r["metrics"][name] for i, r in enumerate(rows) if _value(r, name) is not None}
        if not values:
            continue
        top = min(values.values()) if lower_is_better(name) else max(values.values())
        best[name] = {i for i, v in values.items() if v == top}
    return best


def _value(row: dict[str, Any], name: str) -> float | None:
    value = (row.get("metrics") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None


def write_comparison(
    folder: Path, rows: list[dict[str, Any]], metrics: Sequence[str]
) -> list[Path]:
    """Write comparison.md / .csv / .png for the grid's rows; returns the paths."""
    from search.evaluation.plots import plot_ablation

    best = best_cells(rows, metrics)
    axes = [
        a
        for a in ("encoders", "vector", "hybrid", "fusion", "k", "n", "reranker", "blend")
        if any(a in r for r in rows)
    ]
    md_rows, csv_rows = [], []
    for i, row in enumerate(rows):
        wins = [m for m in metrics if i in best.get(m, set())]
        cells = [_axis_text(row.get(a)) for a in axes]
        values = []
        for m in metrics:
            v = _value(row, m)
            text = fmt(v)
            values.append(f"**{text}** ★" if m in wins else text)
        status = row["status"] if row["status"].startswith("error") else "ok"
        md_rows.append([row["cell"], *cells, *values, status])
        csv_rows.append(
            [row["cell"], *cells, *(_value(row, m) for m in metrics), status, " ".join(wins)]
        )
    headers = ["cell", *axes, *metrics, "status"]
    md = folder / "comparison.md"
    md.write_text(
        f"# Ablation: {folder.name}\n\n{len(rows)} cells; ★ marks the best cell per metric "
        "(lowest for latencies, highest otherwise). Each cell's report is "
        "`cells/<cell>/report.md`.\n\n" + table(headers, md_rows) + "\n"
    )
    path_csv = folder / "comparison.csv"
    with path_csv.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*headers, "best_for"])
        writer.writerows(csv_rows)
    plotted = [
        m
        for m in metrics
        if all(0.0 <= (_value(r, m) or 0.0) <= 1.0 for r in rows)
        and not lower_is_better(m)
        and not m.endswith("qps")
    ]
    png = plot_ablation(
        [r["cell"][:6] + " " + r["label"] for r in rows],
        plotted,
        [[_value(r, m) for m in plotted] for r in rows],
        folder / "comparison.png",
    )
    return [md, path_csv, png]


def _axis_text(value: Any) -> str:
    if value is None:
        return ""
    return "+".join(map(str, value)) if isinstance(value, list) else str(value)
