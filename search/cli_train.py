"""``search train``: thin commands over search.train (``search train reranker``).

Imported by ``search.cli`` (after its ``app`` exists) to register the commands there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from search.cli import (
    ApiKey,
    Backend,
    Collection,
    ConfigFile,
    DataDir,
    Format,
    Url,
    _config,
    app,
    err,
    handle_errors,
    out,
)

train_app = typer.Typer(help="Train stage-2 rerankers.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("reranker")
@handle_errors
def train_reranker_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset path with train and valid splits.")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Model file (a .json sidecar goes next to it).")
    ],
    kind: Annotated[
        str, typer.Option("--kind", help="Reranker kind: pair-gbdt (LightGBM on pair features).")
    ] = "pair-gbdt",
    encoder: Annotated[
        list[str] | None,
        typer.Option("--encoder", "-e", help="Encoders if the collection must be indexed first."),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Stage-1 candidates per query.")] = 50,
    vector: Annotated[
        str | None, typer.Option("--vector", help="Stage-1 vector or 'hybrid'.")
    ] = None,
    objective: Annotated[
        str, typer.Option("--objective", help="binary (default) or lambdarank.")
    ] = "binary",
    split: Annotated[str, typer.Option("--split", help="Split trained on.")] = "train",
    valid_split: Annotated[
        str, typer.Option("--valid-split", help="Split for early stopping and the report.")
    ] = "valid",
    collection: Collection = None,
    fmt: Format = None,
    config: ConfigFile = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    qdrant_url: Url = None,
    qdrant_api_key: ApiKey = None,
) -> None:
    """Train a reranker on a split's stage-1 candidates; report stage 1 vs stage 2 on valid."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from search.train import train_reranker

    cfg = _config(
        config,
        data_dir,
        backend,
        qdrant_url,
        qdrant_api_key,
        stage1={"encoders": encoder or None, "vector": vector},
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as bar:

        def progress(label: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total or None)
            return lambda n: bar.advance(task, n)

        report = train_reranker(
            cfg,
            kind,
            dataset,
            out_path,
            collection=collection,
            fmt=fmt,
            k=k,
            split=split,
            valid_split=valid_split,
            objective=objective,
            progress=progress,
        )
    table = Table(title=f"{report.collection} · {report.vector} · k={report.k} · {valid_split}")
    for col in ("metric", "stage 1", "stage 2"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name in sorted({m.split("/", 1)[1] for m in report.metrics}):
        s1, s2 = report.metrics.get(f"stage1/{name}"), report.metrics.get(f"stage2/{name}")
        table.add_row(name, f"{s1:.3f}", f"{s2:.3f}")
    out.print(table)
    out.print(
        f"{report.train_queries} train queries, {report.info.get('best_iteration')} trees, "
        f"{report.seconds:.1f}s; model: {report.out}",
        highlight=False,
    )
