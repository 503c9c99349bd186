"""``search eval``: a thin command over ``search.evaluation.evaluate_dataset``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from search.cli.common import (
    Collection,
    Encoders,
    Format,
    Fusion,
    Hybrid,
    RerankerSpec,
    StoreFlags,
    Vector,
    comma_list,
    err,
    handle_errors,
    out,
    progress_bars,
    store_options,
)

app = typer.Typer()


@app.command("eval")
@handle_errors
@store_options()
def eval_cmd(
    dataset: Annotated[
        str, typer.Argument(help="Dataset path (Shopee, query-gallery, catalogue).")
    ],
    encoder: Encoders = None,
    vector: Vector = None,
    hybrid: Hybrid = None,
    fusion: Fusion = None,
    k: Annotated[int | None, typer.Option("--k", help="Stage-1 candidates (default 100).")] = None,
    reranker: RerankerSpec = None,
    n: Annotated[int | None, typer.Option("--n", help="Kept after stage 2 (default 10).")] = None,
    blend: Annotated[
        float | None, typer.Option("--blend", help="Stage-1 score weight in stage 2 (0-1).")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split scored (test).")] = None,
    tune_split: Annotated[
        str | None, typer.Option("--tune-split", help="Split the threshold is tuned on (valid).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Queries per pipeline batch (256).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default runs/<collection>-<time>).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json.")] = False,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
) -> None:
    """Score stage 1 and stage 2 on a split; write runs, qrels, metrics, report, plots."""
    from search.evaluation.evaluate import evaluate_dataset

    cfg = store.load(
        stage1={
            "encoders": encoder or None,
            "vector": vector,
            "hybrid": comma_list(hybrid),
            "fusion": fusion,
            "k": k,
            "batch_size": batch_size,
        },
        stage2={"reranker": reranker, "n": n, "blend": blend},
        eval={"split": split, "tune_split": tune_split},
    )
    with progress_bars() as progress:
        result = evaluate_dataset(
            cfg,
            dataset,
            fmt=fmt,
            collection=collection,
            encoders=encoder,
            out=out_dir,
            progress=progress,
        )
    if as_json:
        sys.stdout.write(json.dumps(result.metrics) + "\n")
        return
    print_stages(result.metrics, result.settings)
    for note in result.notes:
        err.print(f"note: {note}", highlight=False)
    out.print(f"report: {result.report}", highlight=False)


def print_stages(metrics: dict[str, float], settings: dict[str, Any]) -> None:
    """The stage-wise table: ranking metrics, match-set F1 and latency, stage 1 vs 2."""
    from search.evaluation.markdown import ranking_rows

    rerank = str(settings["reranker"]).split(",")[0].split(":")[0]
    table = Table(
        title=f"{settings['collection']} · {settings['vector']} · k={settings['k']} → "
        f"{rerank} · n={settings['n']} · {settings['split']}"
    )
    for col in ("metric", "stage 1", "stage 2"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    rows = [(name, a, b) for name, a, b in ranking_rows(metrics)]
    for key in ("f1", "f1_nearest", "latency_p50_ms", "qps"):
        rows.append((key, metrics.get(f"stage1/{key}"), metrics.get(f"stage2/{key}")))
    for name, a, b in rows:
        table.add_row(name, *("–" if v is None else f"{v:.4f}" for v in (a, b)))
    out.print(table)
    out.print(
        f"{int(metrics['queries/evaluated'])} of {int(metrics['queries/total'])} queries scored; "
        f"stage-2 ceiling (stage-1 recall@{settings['k']}): {metrics['stage2/recall_ceiling']:.4f}"
    )
