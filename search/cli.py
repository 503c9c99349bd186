"""The ``search`` command line: parse, build the config, call one function, print.

Heavy stacks (torch, models, qdrant) load inside the functions each command calls,
so ``search --help`` answers at once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from retrieval.errors import SearchError

app = typer.Typer(help="Two-stage product matching search on Qdrant.", no_args_is_help=True)
data_app = typer.Typer(help="Synthesise and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Embedded index home (default: $SEARCH_HOME or the user data dir)."
    ),
]
Backend = Annotated[
    str | None, typer.Option("--backend", help="edge (embedded, default) or server.")
]
Url = Annotated[
    str | None,
    typer.Option(
        "--qdrant-url", envvar="QDRANT_URL", help="Qdrant server URL (implies --backend server)."
    ),
]
ApiKey = Annotated[
    str | None, typer.Option("--qdrant-api-key", envvar="QDRANT_API_KEY", help="Qdrant API key.")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML config (sections store, index, stage1).")
]
Collection = Annotated[str | None, typer.Option("--collection", "-c", help="Collection name.")]
Format = Annotated[
    str | None,
    typer.Option("--format", help="Force the dataset format: shopee, query-gallery, catalog."),
]


def handle_errors(fn: F) -> F:
    """Print user-caused errors as one line and exit with their code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SearchError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; re-run the same command to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


ProgressFactory = Callable[[str, "int | None"], Callable[[int], None]]


@contextmanager
def progress_bars() -> Iterator[ProgressFactory]:
    """Rich progress bars on stderr: ``factory(description, total)`` -> per-batch tick."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:

        def factory(description: str, total: int | None) -> Callable[[int], None]:
            task = bar.add_task(description, total=total or None)
            return lambda n: bar.advance(task, n)

        yield factory


def _config(
    config: Path | None,
    data_dir: Path | None,
    backend: str | None,
    url: str | None,
    api_key: str | None,
    index: dict[str, Any] | None = None,
    stage1: dict[str, Any] | None = None,
    **sections: dict[str, Any],
) -> Any:
    """The run's config: the TOML file, then the flags (``sections``: stage2, eval, ...)."""
    from search.config import load_config

    store = {"data_dir": data_dir, "backend": backend, "url": url, "api_key": api_key}
    return load_config(config, store=store, index=index or {}, stage1=stage1 or {}, **sections)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Two-stage product matching: index catalogues into Qdrant, query, rerank, evaluate."""
    if not verbose:  # model-loading bars of transformers/hub are noise beside our own bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


@app.command("index")
@handle_errors
def index_cmd(
    dataset: Annotated[
        str,
        typer.Argument(
            help="Dataset path: Shopee folder/zip, query/gallery folder, catalogue file."
        ),
    ],
    encoder: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder",
            "-e",
            help="KIND[:MODEL][,key=value...]; repeat for several (default: text, sparse).",
        ),
    ] = None,
    collection: Collection = None,
    fmt: Format = None,
    recreate: Annotated[
        bool, typer.Option("--recreate", help="Drop the collection first.")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Listings per encode/upsert batch.")
    ] = None,
    hnsw_m: Annotated[int | None, typer.Option("--hnsw-m")] = None,
    hnsw_ef_construct: Annotated[int | None, typer.Option("--hnsw-ef-construct")] = None,
    quantization: Annotated[
        str | None, typer.Option("--quantization", help="int8 scalar quantization.")
    ] = None,
    on_disk: Annotated[
        bool | None, typer.Option("--on-disk/--in-ram", help="Server: vectors on disk.")
    ] = None,
    shards: Annotated[int | None, typer.Option("--shards", help="Server cluster: shards.")] = None,
    replicas: Annotated[
        int | None, typer.Option("--replicas", help="Server cluster: replicas.")
    ] = None,
    config: ConfigFile = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    qdrant_url: Url = None,
    qdrant_api_key: ApiKey = None,
) -> None:
    """Encode a dataset and store it in a collection (a killed run resumes)."""

    from search.store import index_dataset

    cfg = _config(
        config,
        data_dir,
        backend,
        qdrant_url,
        qdrant_api_key,
        index={
            "hnsw_m": hnsw_m,
            "hnsw_ef_construct": hnsw_ef_construct,
            "quantization": quantization,
            "on_disk": on_disk,
            "shards": shards,
            "replicas": replicas,
        },
        stage1={"encoders": encoder or None, "batch_size": batch_size},
    )
    with progress_bars() as bars:
        progress = functools.partial(bars, "indexing")
        report, path = index_dataset(
            cfg, dataset, fmt=fmt, collection=collection, recreate=recreate, progress=progress
        )
    out.print(
        f"collection [bold]{report.collection}[/bold]: {report.written} written, "
        f"{report.skipped_existing} already stored, {len(report.failures)} with unreadable images, "
        f"{report.duplicates} duplicate ids, {report.seconds:.1f}s"
    )
    out.print(f"report: {path}", highlight=False)


@app.command("query")
@handle_errors
def query_cmd(
    text: Annotated[str, typer.Argument(help="Query title (may be empty with --image).")] = "",
    image: Annotated[str | None, typer.Option("--image", help="Query image path.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Hits to show.")] = 10,
    vector: Annotated[
        str | None,
        typer.Option(
            "--vector",
            help="Vector name or 'hybrid' (default: hybrid when the collection has several).",
        ),
    ] = None,
    hybrid: Annotated[
        str | None,
        typer.Option("--hybrid", help="Comma-separated vectors fused by hybrid (default: all)."),
    ] = None,
    fusion: Annotated[str | None, typer.Option("--fusion", help="rrf or dbsf.")] = None,
    hnsw_ef: Annotated[int | None, typer.Option("--hnsw-ef")] = None,
    exact: Annotated[
        bool | None, typer.Option("--exact/--approx", help="Exact search instead of HNSW.")
    ] = None,
    reranker: Annotated[
        str | None,
        typer.Option(
            "--reranker", help="Stage 2: KIND[:MODEL][,key=value...], e.g. pair-gbdt:model.txt."
        ),
    ] = None,
    k: Annotated[
        int | None, typer.Option("--k", help="Stage-1 candidates reranked (default 100).")
    ] = None,
    n: Annotated[
        int | None, typer.Option("--n", help="Hits shown after reranking (default --top-k).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    collection: Collection = None,
    config: ConfigFile = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    qdrant_url: Url = None,
    qdrant_api_key: ApiKey = None,
) -> None:
    """Search a collection with a title and/or an image."""
    from search.store import query

    cfg = _config(
        config,
        data_dir,
        backend,
        qdrant_url,
        qdrant_api_key,
        index={"hnsw_ef": hnsw_ef, "exact": exact},
        stage1={
            "vector": vector,
            "fusion": fusion,
            "hybrid": hybrid.split(",") if hybrid else None,
        },
    )
    result = query(
        cfg, text, image=image, collection=collection, top_k=n or top_k, reranker=reranker, k=k
    )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(text, image), ensure_ascii=False) + "\n")
        return
    if result.stage2 is not None:
        _print_two_stages(result)
        return
    table = Table(title=f"{result.collection} · {result.vector}")
    for col in ("rank", "score", "id", "title", "group"):
        table.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for i, hit in enumerate(result.hits, 1):
        table.add_row(
            str(i),
            f"{hit.score:.4f}",
            escape(hit.id),
            escape(hit.title),
            escape(str(hit.payload.get("group") or "")),
        )
    out.print(table)


def _print_two_stages(result: Any) -> None:
    """Stage 1 and stage 2 side by side: each reranked hit with its stage-1 rank."""
    table = Table(title=f"{result.collection} · {result.vector} → {result.reranker}")
    for col in ("stage-2 rank", "stage-2 score", "stage-1 rank", "stage-1 score", "id", "title"):
        table.add_column(col, justify="left" if col in ("id", "title") else "right")
    for i, c in enumerate(result.stage2, 1):
        moved = c.stage1_rank - i
        arrow = (
            f" [green]↑{moved}[/green]"
            if moved > 0
            else (f" [red]↓{-moved}[/red]" if moved < 0 else "")
        )
        table.add_row(
            str(i),
            f"{c.score:.4f}",
            f"{c.stage1_rank}{arrow}",
            f"{c.stage1_score:.4f}",
            escape(c.id),
            escape(c.product.title),
        )
    out.print(table)


@app.command("collections")
@handle_errors
def collections_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigFile = None,
    data_dir: DataDir = None,
    backend: Backend = None,
    qdrant_url: Url = None,
    qdrant_api_key: ApiKey = None,
) -> None:
    """List collections with their point counts and vectors."""
    from search.store import list_collections

    rows = list_collections(_config(config, data_dir, backend, qdrant_url, qdrant_api_key))
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table(title="collections")
    for col in ("name", "points", "vectors", "encoders"):
        table.add_column(col)
    for row in rows:
        vecs = ", ".join(f"{k}:{v}" for k, v in row["vectors"].items())
        table.add_row(
            escape(row["name"]), str(row["points"]), vecs, escape(" ".join(row["encoders"]))
        )
    out.print(table)


@data_app.command("synth")
@handle_errors
def synth_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Output folder (Shopee layout).")],
    groups: Annotated[
        int, typer.Option("--groups", help="Number of products (groups of 2-6 listings).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    image_size: Annotated[int, typer.Option("--image-size")] = 224,
) -> None:
    """Write a deterministic synthetic catalogue in the Shopee layout."""
    from retrieval.data.synth import synthesize

    path = synthesize(out_dir, groups=groups, seed=seed, image_size=image_size)
    out.print(f"synthetic catalogue written to {path}", highlight=False)


@data_app.command("info")
@handle_errors
def info_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset path.")],
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


# Imported last: these modules add their commands to ``app``.
from search import (  # noqa: E402
    cli_eval,  # noqa: F401  (registers `search eval` and `search ablate`)
    cli_mine,  # noqa: F401  (registers `search mine`)
    cli_serve,  # noqa: F401  (registers `search serve`)
    cli_train,  # noqa: F401  (registers `search train`)
)

if __name__ == "__main__":  # pragma: no cover
    # Run the app of the importable module, where the sub-command modules registered.
    from search.cli import app as registered

    registered()
