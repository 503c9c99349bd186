"""``pair-gbdt``: LightGBM on the features of (query, stage-1 candidate) pairs.

Runs stage 1 on the train split's queries (the collection indexed first if missing),
labels each candidate by the query's matches, fits LightGBM with early stopping on the
valid split, saves the model and reports stage 1 against stage 2 on the valid split.
Load it with ``--reranker pair-gbdt:OUT``. With ``stack`` (``--with cross-encoder:PATH``,
or ``stack = "..."`` in ``[train.pair-gbdt]``) the trees are fitted as without, then the
valid candidates (rows the stacked models did not train on) are scored by those
rerankers and a blend of their scores with pair-gbdt's is fitted there
(``rerank.stack_blend``); load it with ``--reranker pair-gbdt:OUT,with=cross-encoder:PATH``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import Candidate, Query
from search.config import AppConfig
from search.train.candidates import (
    CandidateOptions,
    compare_stages,
    open_for_training,
    stage1_splits,
)
from search.train.registry import TrainJob, TrainReport, register_trainer
from training.pair_gbdt import DEFAULT_OBJECTIVE


@dataclass
class PairGbdtOptions(CandidateOptions):
    """``[train.pair-gbdt]``: the LightGBM objective (lambdarank, calibrated on valid; or
    binary)."""

    objective: str = DEFAULT_OBJECTIVE
    stack: str | None = None  # rerankers blended with pair-gbdt: KIND:MODEL[+...]
    stack_queries: int = 500  # valid queries (a seeded sample) the blend is fitted on; 0: all


OOF_COLUMN = "blend_oof"  # not a stack* column: the trees never read it


@register_trainer("pair-gbdt", "reranker", PairGbdtOptions)
def train_pair_gbdt(cfg: AppConfig, job: TrainJob, opts: PairGbdtOptions) -> TrainReport:
    """Train the ``pair-gbdt`` reranker on one split's stage-1 candidates and save it."""
    from rerank.pair_gbdt import PairGbdtReranker
    from rerank.stacking import StoredScores, add_stack_features, build_stack, parse_with
    from training.pair_gbdt import (
        GbdtParams,
        blend_out_of_fold,
        blend_rows,
        fit_blend,
        fit_pair_gbdt,
        label_candidates,
    )
    from training.ranking import sample_indices

    start = time.perf_counter()
    params = GbdtParams(objective=opts.objective)
    stacked = build_stack(parse_with(opts.stack))  # a bad with= fails before stage 1
    dataset, name = open_for_training(cfg, job.dataset, job.collection, job.fmt, job.progress)
    vector, ((train_q, train_rows), (valid_q, valid_rows)) = stage1_splits(
        cfg, dataset, name, opts.k, [opts.split, opts.valid_split], job.progress
    )
    if not train_q:
        raise UsageError(f"{job.dataset}: no labelled queries in split {opts.split!r}")

    def examples(queries: list[Query], rows: list[list[Candidate]]) -> list:
        return [(q.product, row, label_candidates(q.matches, row)) for q, row in zip(queries, rows)]

    info = {"dataset": dataset.name, "collection": name, "vector": vector, "k": opts.k}
    info["split"] = opts.split
    if stacked:
        if not valid_q:
            raise UsageError(
                f"{job.dataset}: stacking fits its blend on split {opts.valid_split!r}, "
                "which has no labelled queries"
            )
        info["stacked"] = [s.describe() for s in stacked]
    model = fit_pair_gbdt(
        examples(train_q, train_rows), examples(valid_q, valid_rows), params, info
    )
    stored: list = []
    oof = None
    if stacked:  # scored after the fit: the trees never see the stacked columns
        keep = sample_indices(len(valid_q), opts.stack_queries)
        blend_q, blend_cands = [valid_q[i] for i in keep], [valid_rows[i] for i in keep]
        items = [(q.product, row) for q, row in zip(blend_q, blend_cands)]
        add_stack_features(stacked, items, job.progress)
        columns, blend_ex = [s.column for s in stacked], examples(blend_q, blend_cands)
        rows = blend_rows(model, columns, blend_ex)  # features of the valid pairs, once
        fit_blend(model, columns, blend_ex, rows)
        model.info["stack_queries"] = len(keep)
        # the report ranks the blend's own rows with the scores already there, each query
        # by a blend fitted without it where the rows allow (else in-sample, and said so)
        stored = [replace(s, reranker=StoredScores(s.column)) for s in stacked]
        valid_q, valid_rows = blend_q, blend_cands
        oof = blend_out_of_fold(model, columns, blend_ex, rows=rows)
        model.info["valid_metrics"] = "blend out-of-fold (5 folds of valid queries)"
        if oof is None:
            model.info["valid_metrics"] = "blend in-sample (too few valid queries for 5 folds)"
        else:
            for c, value in zip((c for row in blend_cands for c in row), oof):
                c.features[OOF_COLUMN] = value
    path = model.save(job.out)
    reranker: Any = PairGbdtReranker(model, stacked=stored)
    if oof is not None:
        reranker = StoredScores(OOF_COLUMN)
    metrics = compare_stages(reranker, valid_q, valid_rows) if valid_q else {}
    return TrainReport(
        "pair-gbdt",
        path,
        len(train_q),
        len(valid_q),
        f"{model.info.get('best_iteration')} trees",
        collection=name,
        vector=vector,
        k=opts.k,
        metrics=metrics,
        info=model.info,
        seconds=time.perf_counter() - start,
    )
