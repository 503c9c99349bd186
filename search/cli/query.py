"""``search query``: one title and/or image against a collection, optionally reranked."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from retrieval.checks import MAX_COUNT, MAX_HITS
from search.cli.common import handle_errors, out
from search.cli.options import (
    Collection,
    Fusion,
    Hybrid,
    RerankerSpec,
    StageK,
    StoreFlags,
    Vector,
    comma_list,
    store_options,
)

app = typer.Typer()


@app.command("query")
@handle_errors
@store_options()
def query_cmd(
    text: Annotated[str, typer.Argument(help="Query title (may be empty with --image).")] = "",
    image: Annotated[str | None, typer.Option("--image", help="Query image path.")] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=MAX_HITS, help="Hits to show.")
    ] = 10,
    vector: Vector = None,
    hybrid: Hybrid = None,
    fusion: Fusion = None,
    hnsw_ef: Annotated[int | None, typer.Option("--hnsw-ef", min=1, max=MAX_COUNT)] = None,
    exact: Annotated[
        bool | None, typer.Option("--exact/--approx", help="Exact search instead of HNSW.")
    ] = None,
    reranker: RerankerSpec = None,
    k: StageK = None,
    n: Annotated[
        int | None,
        typer.Option(
            "--n", min=1, max=MAX_HITS, help="Hits shown after reranking (default --top-k)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    collection: Collection = None,
    *,
    store: StoreFlags,
) -> None:
    """Search a collection with a title and/or an image."""
    from search.query import query

    cfg = store.load(
        index={"hnsw_ef": hnsw_ef, "exact": exact},
        stage1={"vector": vector, "fusion": fusion, "hybrid": comma_list(hybrid)},
    )
    result = query(
        cfg, text, image=image, collection=collection, top_k=n or top_k, reranker=reranker, k=k
    )
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(text, image), ensure_ascii=False) + "\n")
    elif result.stage2 is not None:
        print_two_stages(result)
    else:
        print_hits(result)


def print_hits(result: Any) -> None:
    """Stage-1 hits: rank, score, id, title, group."""
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


def print_two_stages(result: Any) -> None:
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
