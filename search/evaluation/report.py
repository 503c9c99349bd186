"""The run folder of one evaluation.

| file | content |
| --- | --- |
| ``stage1.run``, ``stage2.run`` | TREC runs, ``qid Q0 docid rank score tag``, rank order |
| ``qrels.txt`` | TREC qrels, ``qid 0 docid rel``, the scored queries only |
| ``metrics.json`` | flat numeric keys: ``stage1/recall@10``, ``stage2/f1``, ... |
| ``settings.json`` | dataset, collection, encoders, stage settings, notes, skipped ids |
| ``report.md`` | the readable report, with tables and the plots |
| ``recall_at_k.png``, ``f1_threshold.png`` | recall@k per stage; F1 against threshold |
| ``submission.csv`` | Shopee sets only: ``posting_id,matches`` (self included) |

``ranx.Run.from_file`` / ``ranx.Qrels.from_file`` (and trec_eval) read the run files.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.metrics import ranked
from retrieval.types import Qrels, Run
from search.evaluation.markdown import render_report
from search.evaluation.scoring import EvalResult, Scored


def _check_id(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise UsageError(f"id {value!r} holds whitespace: TREC run files cannot carry it")
    return value


def write_trec_run(run: Run, path: Path, tag: str) -> Path:
    """``qid Q0 docid rank score tag`` lines, each query's documents in the order the
    metrics rank them (``retrieval.metrics.ranked``: score, then the run's order)."""
    with path.open("w") as fh:
        for qid, docs in run.items():
            for rank, doc in enumerate(ranked(docs), 1):
                fh.write(f"{_check_id(qid)} Q0 {_check_id(doc)} {rank} {docs[doc]!r} {tag}\n")
    return path


def write_trec_qrels(qrels: Qrels, path: Path) -> Path:
    """``qid 0 docid rel`` lines."""
    with path.open("w") as fh:
        for qid, docs in qrels.items():
            for doc, rel in docs.items():
                fh.write(f"{_check_id(qid)} 0 {_check_id(doc)} {int(rel)}\n")
    return path


def write_submission(predictions: dict[str, list[str]], path: Path) -> Path:
    """The Shopee submission: every posting with its matches, itself first."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["posting_id", "matches"])
        for pid, matches in predictions.items():
            writer.writerow([pid, " ".join([pid, *(m for m in matches if m != pid)])])
    return path


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in sorted(metrics.items())}


def write_outputs(result: EvalResult, scored: Scored, *, is_shopee: bool) -> list[Path]:
    """Write every file of the run folder; returns their paths."""
    from search.evaluation.plots import plot_f1_threshold, plot_recall_at_k

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    reranker = str(result.settings.get("reranker", "none")).split(":")[0].split(",")[0]
    paths = [
        write_trec_run(scored.runs["stage1"], out / "stage1.run", "stage1"),
        write_trec_run(scored.runs["stage2"], out / "stage2.run", f"stage2-{reranker}"),
        write_trec_qrels(scored.qrels, out / "qrels.txt"),
    ]
    metrics_path = out / "metrics.json"
    settings: dict[str, Any] = {
        **result.settings,
        "notes": result.notes,
        "skipped": scored.skipped,
    }
    (out / "settings.json").write_text(json.dumps(settings, indent=2))
    paths.append(out / "settings.json")
    paths.append(plot_recall_at_k(scored, out / "recall_at_k.png"))
    paths.append(plot_f1_threshold(scored, result.settings, out / "f1_threshold.png"))
    if is_shopee:
        paths.append(write_submission(scored.predictions, out / "submission.csv"))
    (out / "report.md").write_text(render_report(result, scored))
    paths.append(out / "report.md")
    # last, so a folder with metrics.json is a finished run (ablation resumes on it)
    metrics_path.write_text(json.dumps(_finite(result.metrics), indent=2))
    paths.append(metrics_path)
    return paths
