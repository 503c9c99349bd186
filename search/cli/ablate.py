"""``search ablate``: a thin command over ``search.ablation.run_grid``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from search.cli.common import err, handle_errors, out, progress_bars
from search.cli.options import StoreFlags, store_options

app = typer.Typer()


@app.command("ablate")
@handle_errors
@store_options("data_dir", "backend", "qdrant_url", "qdrant_api_key")
def ablate_cmd(
    grid_file: Annotated[Path, typer.Argument(help="GRID.toml: [grid] axes + shared sections.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Grid folder (default: the file's or runs/grid-*).")
    ] = None,
    *,
    store: StoreFlags,
) -> None:
    """Evaluate every cell of a grid (finished cells are kept) and compare them.

    The [grid] table names the dataset and the axes: encoders, vector, hybrid, fusion,
    k, n, reranker, blend (see search/ablation/ablate.py for the format)."""
    from search.ablation.ablate import load_grid, run_grid

    grid = load_grid(grid_file)

    def on_cell(i: int, total: int, label: str, status: str) -> None:
        err.print(
            f"cell {i}/{total} [{status}] {label}", markup=False, highlight=False, soft_wrap=True
        )

    with progress_bars() as progress:
        result = run_grid(
            grid, out=out_dir, overrides={"store": store.store}, progress=progress, on_cell=on_cell
        )
    print_comparison(result.rows, grid.metrics, str(result.out))
    out.print(f"comparison: {result.files[0]}", highlight=False)


def print_comparison(rows: list[dict[str, Any]], metrics: list[str], title: str) -> None:
    """One line per cell, the best value of each metric bold and starred."""
    from search.ablation.comparison import best_cells

    best = best_cells(rows, metrics)
    table = Table(title=f"ablation · {title}")
    table.add_column("cell")
    table.add_column("setting")
    for name in metrics:
        table.add_column(name.replace("stage", "s"), justify="right")
    table.add_column("status")
    for i, row in enumerate(rows):
        cells = []
        for name in metrics:
            value = (row.get("metrics") or {}).get(name)
            text = "–" if value is None else f"{value:.4f}"
            cells.append(f"[bold]{text}★[/bold]" if i in best.get(name, set()) else text)
        status = "ok" if not row["status"].startswith("error") else escape(row["status"])
        table.add_row(row["cell"][:8], escape(row["label"]), *cells, status)
    out.print(table)
