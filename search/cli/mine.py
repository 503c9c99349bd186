"""``search mine``: a thin command over ``search.train.mine``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search.cli.common import (
    Collection,
    Format,
    StoreFlags,
    handle_errors,
    out,
    progress_bars,
    store_options,
)

app = typer.Typer()


@app.command("mine")
@handle_errors
@store_options()
def mine_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset path (Shopee, query-gallery, ...).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    encoder: Annotated[
        list[str] | None,
        typer.Option("--encoder", "-e", help="KIND[:MODEL][,k=v...]; repeat (default: config)."),
    ] = None,
    vector: Annotated[
        str | None, typer.Option("--vector", help="Stage-1 vector or 'hybrid'.")
    ] = None,
    ranks: Annotated[
        str, typer.Option("--range", help="Stage-1 ranks negatives come from (1-based).")
    ] = "2-200",
    negatives: Annotated[int, typer.Option("--negatives", "-n", help="Per query.")] = 15,
    split: Annotated[str, typer.Option("--split", help="Split whose queries are mined.")] = "train",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampling.")] = 0,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
) -> None:
    """Mine hard negatives for a split's queries (FlagEmbedding's query/pos/neg JSONL)."""
    from search.train.mine import mine

    cfg = store.load(stage1={"vector": vector})
    with progress_bars() as progress:
        report = mine(
            cfg,
            dataset,
            out_path,
            encoders=encoder or None,
            collection=collection,
            fmt=fmt,
            ranks=ranks,
            negatives=negatives,
            split=split,
            seed=seed,
            progress=progress,
        )
    out.print(
        f"{report.rows} of {report.queries} {split} queries, {report.negatives} negatives "
        f"({report.collection} · {report.vector}, {report.seconds:.1f}s): {report.out}",
        highlight=False,
    )
