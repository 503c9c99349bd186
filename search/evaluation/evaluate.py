"""Batch evaluation (``search eval``): stage 1 and stage 2 on the same queries.

``evaluate_dataset`` opens the dataset, finds (or indexes) its collection, runs the
pipeline over the tuning split (valid) and the scored split (test) in batches, then
scores each stage: ranking metrics over TREC-style runs, match-set precision, recall
and F1 at a threshold swept on the tuning split and applied to the scored one (with
the "always keep the nearest" rule off and on), latency and throughput. The run
folder gets the files listed in ``search.evaluation.report``.

Without a reranker, stage 2 is the stage-1 top n passed through unchanged (labelled
``none`` in the report), so the two stages still line up column for column.

Skipped, never silently scored as zero: queries whose matches are all missing from the
gallery (no relevant item to find; counted, left out of ranking metrics) and queries
lacking the searched vector (no title, or no readable image for an image vector;
counted, left out of every metric). If every query lacks it, that is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index import HYBRID
from retrieval.retriever import Retriever
from retrieval.types import Query
from search.collection import ensure_collection
from search.config import AppConfig
from search.evaluation.scoring import EvalResult, StageRows, score_stages
from search.pipeline import Pipeline, PipelineConfig
from search.timing import Probe

log = logging.getLogger(__name__)
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def run_split(
    pipe: Pipeline,
    dataset: Dataset,
    split: str,
    queries: Sequence[Query],
    progress: ProgressFactory | None = None,
) -> StageRows:
    """Both stages for a split's queries, timed per batch."""
    products = [q.product for q in queries]
    flt = dataset.search_filter(split)
    probe = Probe(pipe.retriever)
    tick = progress(f"{split} queries", len(products)) if progress else None
    with probe:
        results = pipe.run(
            products,
            filters=[flt] * len(products) if flt else None,
            exclude_self=dataset.self_match,
            progress=probe.ticker(tick),
        )
    n = pipe.config.n
    stage1 = {r.query.id: [(c.id, float(c.stage1_score)) for c in r.stage1] for r in results}
    stage2 = {
        r.query.id: [(c.id, float(c.score or 0.0)) for c in r.stage2]
        if r.stage2 is not None
        else stage1[r.query.id][:n]
        for r in results
    }
    return StageRows(split, list(queries), stage1, stage2, probe.no_vector, probe.timing())


def _split_queries(dataset: Dataset, split: str) -> list[Query]:
    queries = dataset.queries(split)
    if not queries:
        sizes = {s: len(dataset.queries(s)) for s in ("train", "valid", "test")}
        have = ", ".join(f"{s} ({n})" for s, n in sizes.items() if n) or "none"
        raise UsageError(
            f"split {split!r} of {dataset.name} has no queries; splits with queries: {have}"
        )
    return queries


def evaluate_dataset(
    cfg: AppConfig,
    dataset_path: str,
    *,
    fmt: str | None = None,
    collection: str | None = None,
    encoders: Sequence[str] | None = None,
    out: str | Path | None = None,
    progress: ProgressFactory | None = None,
) -> EvalResult:
    """Evaluate both stages on ``cfg.eval.split`` and write the run folder.

    ``encoders`` is an explicit encoder list (``--encoder``); without it an existing
    collection of the dataset is used as indexed. ``out`` overrides ``cfg.eval.out``."""
    from rerank.base import build_reranker
    from retrieval.data import open_dataset
    from search.evaluation.report import write_outputs
    from search.indexing import connect

    ev = cfg.eval
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not products:
        raise UsageError(f"dataset {dataset_path} has no products")
    test_q = _split_queries(dataset, ev.split)
    tune_q = dataset.queries(ev.tune_split) if ev.tune_split != ev.split else []
    notes: list[str] = []
    if not any(p.image_path for p in products):
        notes.append("the dataset has no images: any image vector is empty")
    coll = ensure_collection(
        cfg, dataset, dataset_path, products, fmt, collection, encoders, progress
    )
    notes += coll.notes
    spec = cfg.stage2.reranker if cfg.stage2.reranker not in (None, "", "none") else None
    reranker = build_reranker(spec) if spec else None
    index = connect(cfg)
    try:
        retriever = Retriever.for_collection(index, coll.name)
        names = retriever.vector_names()
        vector = cfg.stage1.vector or (HYBRID if len(names) > 1 else names[0])
        pcfg = PipelineConfig(
            k=cfg.stage1.k,
            n=min(cfg.stage2.n, cfg.stage1.k),
            using=vector,
            hybrid=list(cfg.stage1.hybrid),
            fusion=cfg.stage1.fusion,
            blend=cfg.stage2.blend,
            batch_size=ev.batch_size,
        )
        pipe = Pipeline(retriever, reranker, pcfg)
        test = run_split(pipe, dataset, ev.split, test_q, progress)
        tune = run_split(pipe, dataset, ev.tune_split, tune_q, progress) if tune_q else None
    finally:
        index.close()
    gallery = {p.id for p in products}
    if tune is None:
        notes.append(
            f"no {ev.tune_split!r} queries: the match threshold was tuned on {ev.split!r} "
            "itself (optimistic)"
        )
    scored = score_stages(
        test, tune, gallery, dataset.self_match, pcfg, ev, coll.items, reranked=reranker is not None
    )
    notes += scored.notes
    settings = {
        "dataset": dataset.name,
        "dataset_path": str(Path(dataset_path).resolve()),
        "format": dataset.format,
        "self_match": dataset.self_match,
        "split": ev.split,
        "tune_split": ev.tune_split if tune is not None else ev.split,
        "collection": coll.name,
        "encoders": retriever.encoder_specs,
        "vector": vector,
        "hybrid": list(cfg.stage1.hybrid),
        "fusion": cfg.stage1.fusion,
        "k": pcfg.k,
        "n": pcfg.n,
        "reranker": reranker.spec if reranker else "none",
        "blend": pcfg.blend,
        "batch_size": ev.batch_size,
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    folder = Path(out or ev.out or default_out(coll.name))
    result = EvalResult(folder, scored.metrics, settings, notes)
    write_outputs(result, scored, is_shopee=dataset.format == "shopee")
    return result


def default_out(collection: str) -> Path:
    """``runs/<collection>-<timestamp>`` under the working directory."""
    return Path("runs") / f"{collection}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
