"""Batch evaluation (``search eval``): stage 1 and stage 2 on the same queries.

``evaluate_dataset`` opens the dataset, finds (or indexes) its collection in the one
index it opens, runs the pipeline over the tuning split (valid) and the scored split
(test) in batches, then scores each stage: ranking metrics over TREC-style runs,
match-set precision, recall and F1 at a threshold swept on the tuning split and
applied to the scored one (with the "always keep the nearest" rule off and on),
latency and throughput. The run folder gets the files listed in
``search.evaluation.report``.

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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.retriever import Retriever
from retrieval.types import Hit, Product, ProgressFactory, Query
from search.collection import CollectionChoice, open_collection
from search.config import AppConfig
from search.evaluation.scoring import EvalResult, StageRows, score_stages
from search.evaluation.stored import StoredQueries
from search.pipeline import Pipeline

log = logging.getLogger(__name__)


def run_split(
    pipe: Pipeline,
    dataset: Dataset,
    split: str,
    queries: Sequence[Query],
    progress: ProgressFactory | None = None,
    answers: dict[str, dict[str, list[Hit]] | None] | None = None,
) -> StageRows:
    """Both stages for a split's queries, with the pipeline's own timings; ``answers``
    gets each query's answer per searched vector (for the matcher's edge sets)."""
    products = [q.product for q in queries]
    run = pipe.run_split(dataset, split, products, progress, lists=answers is not None)
    if answers is not None:
        answers.update((r.query.id, r.lists) for r in run.results)
    stage1 = {r.query.id: [(c.id, float(c.stage1_score)) for c in r.stage1] for r in run.results}
    stage2 = {
        r.query.id: [(c.id, float(c.score or 0.0)) for c in r.stage2]
        if r.stage2 is not None
        else stage1[r.query.id][: pipe.n]
        for r in run.results
    }
    return StageRows(
        split,
        list(queries),
        stage1,
        stage2,
        run.no_vector,
        run.timing,
        vector=pipe.vector,
        k=pipe.stage1.k,
        n=pipe.n,
    )


def _split_queries(dataset: Dataset, split: str) -> list[Query]:
    queries = dataset.queries(split)
    if not queries:
        sizes = {s: len(dataset.queries(s)) for s in ("train", "valid", "test")}
        have = ", ".join(f"{s} ({n})" for s, n in sizes.items() if n) or "none"
        raise UsageError(
            f"split {split!r} of {dataset.name} has no queries; splits with queries: {have}"
        )
    return queries


@dataclass
class _Opened:
    """The dataset of an evaluation, its listings, queries and collection."""

    dataset: Dataset
    products: list[Product]
    test: list[Query]
    tune: list[Query]
    collection: CollectionChoice
    notes: list[str]


def evaluate_dataset(
    cfg: AppConfig,
    dataset_path: str,
    *,
    fmt: str | None = None,
    collection: str | None = None,
    encoders: Sequence[str] | None = None,
    out: str | Path | None = None,
    progress: ProgressFactory | None = None,
    announce: Callable[[Any], None] | None = None,
) -> EvalResult:
    """Evaluate both stages on ``cfg.eval.split`` and write the run folder.

    ``announce`` is given what is worth a line before a long phase starts (``--fine-tune``:
    each ``search.evaluation.fine_tune.FineTuneEstimate``).

    ``encoders`` is an explicit encoder list (``--encoder``); without it an existing
    collection of the dataset is used as indexed. ``out`` overrides ``cfg.eval.out``."""
    from rerank.base import build_reranker
    from search.evaluation.report import write_outputs

    ev = cfg.eval
    tuned, meta = None, None  # --fine-tune: encoders fine-tuned first, how to rebuild them
    if cfg.fine_tune.encoders:
        from search.evaluation.fine_tune import fine_tune_phase

        tuned = fine_tune_phase(cfg, dataset_path, fmt, encoders, out or ev.out, progress, announce)
        encoders, out, meta = tuned.encoders, tuned.folder, tuned.collection_meta()
    opened, index = _open(cfg, dataset_path, fmt, collection, encoders, progress, meta)
    spec = cfg.stage2.reranker if cfg.stage2.reranker not in (None, "", "none") else None
    try:
        reranker = build_reranker(spec) if spec else None
        name = opened.collection.name
        if opened.dataset.self_match and ev.stored_queries:
            retriever: Retriever = StoredQueries(index, name, opened.dataset.name)
        else:
            retriever = Retriever.for_collection(index, name)
        pipe = Pipeline(retriever, reranker, cfg.stage1, cfg.stage2)
        # one search of each listing: the matcher's edge sets read stage 1's answers
        answers = {} if _one_pass(cfg, opened, retriever) else None
        test = run_split(pipe, opened.dataset, ev.split, opened.test, progress, answers)
        tune = None
        if opened.tune:
            tune = run_split(pipe, opened.dataset, ev.tune_split, opened.tune, progress, answers)
        folder = Path(out or ev.out or default_out(opened.collection.name))
        cat = None
        if tune:
            cat = _tune_matcher(cfg, index, opened, retriever, folder, progress, answers)
        if cat is not None and tuned is not None:  # the fine-tuned folders it needs
            cat.matcher.info["fine_tuned"] = tuned.encoders_info
            cat.matcher.save(cat.path)
    finally:
        index.close()
    notes = opened.notes + (tuned.notes if tuned is not None else [])
    if isinstance(retriever, StoredQueries):
        notes.append(retriever.note())
    if tune is None:
        notes.append(
            f"no {ev.tune_split!r} queries: the match threshold was tuned on {ev.split!r} "
            "itself (optimistic)"
        )
    gallery = {p.id for p in opened.products}
    dataset = opened.dataset
    scored = score_stages(
        test,
        tune,
        gallery,
        dataset.self_match,
        ev,
        opened.collection.items,
        reranked=bool(spec),
        catalogue=cat,
    )
    notes += scored.notes
    if cat is not None:
        against = "the whole catalogue" if ev.match_against == "catalogue" else "its split"
        notes.append(
            f"matcher tuned on {ev.tune_split!r} matched against {against}: {cat.path} "
            f"(rule {cat.matcher.rule})"
        )
    settings = _settings(cfg, dataset_path, dataset, pipe, tune is not None)
    settings["matcher"] = str(cat.path) if cat is not None else None
    result = EvalResult(folder, scored.metrics, settings, notes)
    write_outputs(result, scored, is_shopee=dataset.format == "shopee")
    return result


def _tune_matcher(
    cfg: AppConfig,
    index: Any,
    opened: _Opened,
    retriever: Retriever,
    folder: Path,
    progress: ProgressFactory | None,
    answers: dict[str, dict[str, list[Hit]] | None] | None = None,
) -> Any:
    """On a catalogue: the matcher tuned on the tuning split
    (``search.match.tuning.catalogue``); None for a query/gallery set."""
    ev = cfg.eval
    if not opened.dataset.self_match:
        if ev.labels is not None:
            raise UsageError(
                f"--labels (eval.labels) teach a catalogue's matcher; {opened.dataset.name} "
                "is a query/gallery set"
            )
        return None
    from search.match.labels import read_labels
    from search.match.tuning.catalogue import tune_catalogue

    known = {p.id for p in opened.dataset.products()}
    labels = read_labels(ev.labels, known) if ev.labels is not None else None
    return tune_catalogue(
        index,
        opened.dataset,
        opened.collection.name,
        retriever.encoder_specs,
        retriever.vector_names(),
        folder,
        split=ev.split,
        tune_split=ev.tune_split,
        k=ev.match_k,
        inb=ev.match_inb,
        pair=ev.match_pair,
        against=ev.match_against,
        labels=labels,
        answers=answers,
        progress=progress,
    )


def _one_pass(cfg: AppConfig, opened: _Opened, retriever: Retriever) -> bool:
    """Whether stage 1's answers can serve the matcher's edge sets: a catalogue's
    listings searched within their split with their stored vectors (what the edge sets
    search with), at least as deep as the matcher's candidates."""
    ev = cfg.eval
    return (
        opened.dataset.self_match
        and isinstance(retriever, StoredQueries)
        and ev.match_against == "split"
        and cfg.stage1.k >= ev.match_k
    )


def _open(
    cfg: AppConfig,
    dataset_path: str,
    fmt: str | None,
    collection: str | None,
    encoders: Sequence[str] | None,
    progress: ProgressFactory | None,
    meta: dict[str, Any] | None = None,
) -> tuple[_Opened, VectorIndex]:
    """Open the dataset, pick its splits' queries and its collection (indexed if missing);
    the index stays open for the job (the caller closes it)."""
    from retrieval.data import open_dataset

    ev = cfg.eval
    dataset = open_dataset(dataset_path, format=fmt)
    products = list(dataset.products())
    if not products:
        raise UsageError(f"dataset {dataset_path} has no products")
    test = _split_queries(dataset, ev.split)
    tune = dataset.queries(ev.tune_split) if ev.tune_split != ev.split else []
    notes: list[str] = []
    if not any(p.image_path for p in products):
        notes.append("the dataset has no images: any image vector is empty")
    index, coll = open_collection(
        cfg, dataset, dataset_path, products, fmt, collection, encoders, progress, meta=meta
    )
    return _Opened(dataset, products, test, tune, coll, notes + coll.notes), index


def _settings(
    cfg: AppConfig, dataset_path: str, dataset: Dataset, pipe: Pipeline, tuned: bool
) -> dict[str, Any]:
    """What the run was asked for, as settings.json records it."""
    ev = cfg.eval
    return {
        "dataset": dataset.name,
        "dataset_path": str(Path(dataset_path).resolve()),
        "format": dataset.format,
        "self_match": dataset.self_match,
        "split": ev.split,
        "tune_split": ev.tune_split if tuned else ev.split,
        "collection": pipe.retriever.collection,
        "encoders": pipe.retriever.encoder_specs,
        "vector": pipe.vector,
        "hybrid": list(cfg.stage1.hybrid),
        "fusion": cfg.stage1.fusion,
        "k": pipe.stage1.k,
        "n": pipe.n,
        "reranker": pipe.reranker.spec if pipe.reranker else "none",
        "blend": pipe.stage2.blend,
        "batch_size": pipe.stage1.batch_size,
        "created": datetime.now().isoformat(timespec="seconds"),
    }


def default_out(collection: str) -> Path:
    """``runs/<collection>-<timestamp>`` under the working directory."""
    return Path("runs") / f"{collection}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
