"""``search data``: synthesise and inspect datasets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from retrieval.checks import MAX_COUNT
from search.cli.common import handle_errors, out
from search.cli.options import DatasetPath, Format

app = typer.Typer(help="Synthesise and inspect datasets.", no_args_is_help=True)


@app.command("synth")
@handle_errors
def synth_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Output folder (Shopee layout).")],
    groups: Annotated[
        int,
        typer.Option(
            "--groups", min=1, max=MAX_COUNT, help="Number of products (groups of 2-6 listings)."
        ),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1)] = 0,
    image_size: Annotated[int, typer.Option("--image-size", min=16, max=4096)] = 224,
) -> None:
    """Write a deterministic synthetic catalogue in the Shopee layout."""
    from retrieval.data.synth import synthesize

    path = synthesize(out_dir, groups=groups, seed=seed, image_size=image_size)
    out.print(f"synthetic catalogue written to {path}", highlight=False)


@app.command("info")
@handle_errors
def info_cmd(
    dataset: DatasetPath,
    fmt: Format = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Counts of products, images, groups and queries per split."""
    from retrieval.data import open_dataset

    info = open_dataset(dataset, format=fmt).describe()
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    table = Table(title=str(info.get("name")))
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in info.items():
        table.add_row(key, escape(str(value)))
    out.print(table)
