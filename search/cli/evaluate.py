"""``search eval``: a thin command over ``search.evaluation.evaluate_dataset``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from search.cli.common import check_out, err, handle_errors, out, progress_bars
from search.cli.options import (
    Collection,
    DatasetPath,
    FineTune,
    FineTuneLoss,
    Format,
    LabelsFile,
    ResumeRun,
    StageFlags,
    StoreFlags,
    comma_list,
    stage_options,
    store_options,
)

app = typer.Typer()


@app.command("eval")
@handle_errors
@store_options()
@stage_options()
def eval_cmd(
    dataset: DatasetPath,
    split: Annotated[str | None, typer.Option("--split", help="Split scored (test).")] = None,
    tune_split: Annotated[
        str | None, typer.Option("--tune-split", help="Split the threshold is tuned on (valid).")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Run folder (default runs/<collection>-<time>).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics.json.")] = False,
    match_pair: Annotated[
        bool | None,
        typer.Option(
            "--match-pair/--no-match-pair",
            help="Catalogues: train a pair model on the train split's candidate edges.",
        ),
    ] = None,
    match_against: Annotated[
        str | None,
        typer.Option(
            "--match-against",
            help="Catalogues: tune with each split's listings matched against their split "
            "or the whole catalogue (as `search match` runs).",
        ),
    ] = None,
    fine_tune: FineTune = None,
    fine_tune_loss: FineTuneLoss = None,
    resume: ResumeRun = None,
    labels: LabelsFile = None,
    collection: Collection = None,
    fmt: Format = None,
    *,
    store: StoreFlags,
    stages: StageFlags,
) -> None:
    """Score stage 1 and stage 2 on a split; write runs, qrels, metrics, report, plots."""
    from search.evaluation.evaluate import evaluate_dataset

    cfg = store.load(
        **stages.sections(),
        eval={
            "split": split,
            "tune_split": tune_split,
            "match_pair": match_pair,
            "match_against": match_against,
            "labels": labels,
        },
        fine_tune={"encoders": comma_list(fine_tune), "resume": resume, "loss": fine_tune_loss},
    )
    if out_dir is not None:
        check_out(out_dir)
    elif cfg.eval.out is not None:
        check_out(cfg.eval.out, "config eval.out")
    else:  # the default, runs/<collection>-<time>
        check_out(Path("runs"), "the default folder (--out)")
    with progress_bars() as progress:
        result = evaluate_dataset(
            cfg,
            dataset,
            fmt=fmt,
            collection=collection,
            encoders=stages.encoder,
            out=out_dir,
            progress=progress,
            announce=lambda told: err.print(told.line(), highlight=False),
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
    # without a reranker stage 2 is stage 1 passed through: show stage 1 alone, unless a
    # catalogue's pair model gave the match sets a stage 2 of their own
    two = rerank != "none" or "stage2/f1" in metrics and bool(settings.get("matcher"))
    cols = ("metric", "stage 1", "stage 2") if two else ("metric", "stage 1")
    for col in cols:
        table.add_column(col, justify="left" if col == "metric" else "right")
    rows = [(name, a, b) for name, a, b in ranking_rows(metrics)]
    for key in ("f1", "f1_nearest", "latency_p50_ms", "qps"):
        rows.append((key, metrics.get(f"stage1/{key}"), metrics.get(f"stage2/{key}")))
    for name, a, b in rows:
        if a is not None or b is not None:
            cells = (a, b)[: len(cols) - 1]
            table.add_row(name, *("–" if v is None else f"{v:.4f}" for v in cells))
    out.print(table)
    print_rules(metrics, settings)
    out.print(
        f"{int(metrics['queries/evaluated'])} of {int(metrics['queries/total'])} queries scored; "
        f"stage-2 ceiling (stage-1 recall@{settings['k']}): {metrics['stage2/recall_ceiling']:.4f}"
    )


def print_rules(metrics: dict[str, float], settings: dict[str, Any]) -> None:
    """A catalogue's match rules with their F1 on the tuning and the scored split."""
    rules = [k.split("/")[1] for k in metrics if k.startswith("match/") and k.endswith("/f1")]
    if not rules:
        return
    tune, split = settings["tune_split"], settings["split"]
    table = Table(title=f"match rules: F1 on {tune} (tuning) and {split}")
    for col in ("rule", tune, split):
        table.add_column(col, justify="left" if col == "rule" else "right")
    for r in rules:
        table.add_row(r, f"{metrics[f'match/{r}/valid_f1']:.4f}", f"{metrics[f'match/{r}/f1']:.4f}")
    out.print(table)
