"""``search index`` and ``search collections``: fill the store and list what it holds."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, fields
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from retrieval.checks import MAX_COUNT
from retrieval.errors import UsageError
from search.cli.common import handle_errors, out, progress_bars
from search.cli.options import (
    Collection,
    DatasetPath,
    Encoders,
    Format,
    StoreFlags,
    option_group,
    store_options,
)

app = typer.Typer()


@dataclass(frozen=True)
class LayoutFlags:
    """How ``search index`` lays a collection out: HNSW, quantization and, on a server or
    cluster, storage, shards, replicas, write consistency and parallel upload streams."""

    hnsw_m: Annotated[int | None, typer.Option("--hnsw-m", min=2, max=1024)] = None
    hnsw_ef_construct: Annotated[
        int | None, typer.Option("--hnsw-ef-construct", min=4, max=MAX_COUNT)
    ] = None
    quantization: Annotated[
        str | None, typer.Option("--quantization", help="int8 scalar quantization.")
    ] = None
    on_disk: Annotated[
        bool | None, typer.Option("--on-disk/--in-ram", help="Server: vectors on disk.")
    ] = None
    shards: Annotated[
        int | None, typer.Option("--shards", min=1, max=1000, help="Server cluster: shards.")
    ] = None
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", min=1, max=1000, help="Server cluster: copies of each shard."),
    ] = None
    write_consistency: Annotated[
        int | None,
        typer.Option(
            "--write-consistency",
            min=1,
            max=1000,
            help="Server cluster: replicas that acknowledge a write (at most --replicas).",
        ),
    ] = None
    upload_streams: Annotated[
        int | None,
        typer.Option("--upload-streams", min=1, max=64, help="Server: batches written at once."),
    ] = None

    @property
    def index(self) -> dict[str, Any]:
        """The ``[index]`` overrides these flags make."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RayFlags:
    """``search index`` on Ray Data: where, how many encoder workers, GPUs each."""

    ray: Annotated[
        bool, typer.Option("--ray", help="Encode on Ray Data workers (needs --qdrant-url).")
    ] = False
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="HOST:PORT",
            help="Ray cluster to join (implies --ray; default RAY_ADDRESS, else a local one).",
        ),
    ] = None
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, max=10000, help="Ray: encoder actors.")
    ] = None
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", min=0, max=64, help="Ray: GPUs per actor.")
    ] = 0.0

    def job(self) -> tuple[Any, dict[str, Any]]:
        """The index job to run and its Ray options (none without ``--ray``)."""
        from search.indexing import index_dataset

        if not (self.ray or self.ray_address is not None):
            if self.workers is not None or self.gpus_per_worker:
                raise UsageError("--workers and --gpus-per-worker need --ray")
            return index_dataset, {}
        from search.indexing_ray import index_dataset_ray

        options = {"address": self.ray_address, "workers": self.workers or 1}
        return index_dataset_ray, options | {"gpus_per_worker": self.gpus_per_worker}


@app.command("index")
@handle_errors
@store_options()
@option_group(LayoutFlags, "layout")
@option_group(RayFlags, "scale")
def index_cmd(
    dataset: DatasetPath,
    encoder: Encoders = None,
    collection: Collection = None,
    fmt: Format = None,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="Drop the collection first.")
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, max=MAX_COUNT, help="Listings per encode/upsert batch."
        ),
    ] = None,
    *,
    store: StoreFlags,
    layout: LayoutFlags,
    scale: RayFlags,
) -> None:
    """Encode a dataset and store it in a collection (a killed run resumes)."""
    cfg = store.load(
        index=layout.index,
        stage1={"encoders": encoder or None, "batch_size": batch_size},
    )
    job, options = scale.job()
    with progress_bars() as bars:
        progress = functools.partial(bars, "indexing")
        report, path = job(
            cfg, dataset, fmt=fmt, collection=collection, recreate=recreate, progress=progress,
            wait_progress=bars, **options,
        )  # fmt: skip
    out.print(
        f"collection [bold]{report.collection}[/bold]: {report.written} written, "
        f"{report.skipped_existing} already stored, {len(report.failures)} with unreadable images, "
        f"{report.duplicates} duplicate ids, {report.seconds:.1f}s"
    )
    if report.changed or report.removed:
        out.print(
            f"{report.changed} of the written had changed in the source and were encoded again; "
            f"{report.removed} no longer in the source were removed"
        )
    if report.rewritten:
        out.print(
            f"{report.rewritten} written were not in the collection after the load (lost in "
            "flight) and were stored again"
        )
    out.print(f"report: {path}", highlight=False)


@app.command("collections")
@handle_errors
@store_options()
def collections_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    store: StoreFlags,
) -> None:
    """List collections with their point counts and vectors."""
    from search.indexing import list_collections

    rows = list_collections(store.load())
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="collections")
    for col in ("name", "points", "vectors", "encoders"):
        table.add_column(col)
    for row in rows:
        vecs = ", ".join(f"{k}:{v}" for k, v in row["vectors"].items())
        if row.get("error"):  # one locked or damaged collection does not hide the others
            table.add_row(escape(row["name"]), "[red]?[/red]", "", escape(row["error"]))
            continue
        table.add_row(
            escape(row["name"]), str(row["points"]), vecs, escape(" ".join(row["encoders"]))
        )
    out.print(table)
