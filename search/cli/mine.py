"""``search mine``: a thin command over ``search.train.mine``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from search.cli.common import handle_errors, out, progress_bars
from search.cli.options import (
    Collection,
    DatasetPath,
    Encoders,
    Format,
    StoreFlags,
    Vector,
    store_options,
)

app = typer.Typer()


@app.command("mine")
@handle_errors
@store_options()
def mine_cmd(
    dataset: DatasetPath,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    encoder: Encoders = None,
    vector: Vector = None,
    ranks: Annotated[
        str | None,
        typer.Option("--range", help="Stage-1 ranks hard negatives come from (1-50)."),
    ] = None,
    negatives: Annotated[
        int | None,
        typer.Option("--negatives", "-n", min=1, max=10_000, help="Hard negatives per query (7)."),
    ] = None,
    random: Annotated[
        int | None,
        typer.Option("--random", min=0, max=10_000, help="Random gallery negatives per query (2)."),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            "--margin", help="Drop candidates scored above the positive by this much (0.3)."
        ),
    ] = None,
    no_guard: Annotated[
        bool, typer.Option("--no-guard", help="Keep every candidate (no false-negative guard).")
    ] = False,
    split: Annotated[str, typer.Option("--split", help="Split whose queries are mined.")] = "train",
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the sampling (0).")
    ] = None,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
) -> None:
    """Mine hard negatives for a split's queries (FlagEmbedding's query/pos/neg JSONL)."""
    import dataclasses

    from search.train.mine import mine
    from training.mining import MineConfig, MineCounts, parse_range, with_overrides

    config = with_overrides(
        MineConfig(),
        ranks=parse_range(ranks) if ranks else None,
        hard=negatives,
        random=random,
        margin=margin,
        seed=seed,
    )
    if no_guard:
        config = dataclasses.replace(config, margin=None)
    cfg = store.load(stage1={"vector": vector})
    with progress_bars() as progress:
        report = mine(
            cfg,
            dataset,
            out_path,
            encoders=encoder or None,
            collection=collection,
            fmt=fmt,
            config=config,
            split=split,
            progress=progress,
        )
    out.print(MineCounts(**report.counts).describe(), highlight=False)
    out.print(
        f"{report.rows} of {report.queries} {split} queries, {report.negatives} negatives "
        f"({report.collection} · {report.vector}, {report.seconds:.1f}s): {report.out}",
        highlight=False,
    )
