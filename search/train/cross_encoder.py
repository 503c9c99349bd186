"""``cross-encoder``: a cross-encoder reranker trained on mined negatives.

Rows come from a ``search mine`` file of the train split, or, without one, are mined
here from the train split's stage-1 candidates with ``training.mining.MineConfig``'s
defaults (the ones ``search mine`` uses). Each epoch is checked on the valid split's
stage-1 candidates (the dataset's collection, indexed first if missing); OUT keeps the
best epoch by hit@1, ``OUT/valid_epochs.md`` holds the per-epoch table, and the report
compares stage 1 with the trained reranker on the valid lists the epochs were ranked on
(``valid_queries``, ``valid_k``; scoring every valid candidate again was 10,250 pairs
on Abt-Buy, 136 s on one thread under a load of 5). Load it with
``--reranker cross-encoder:OUT``. Every training default lives in
``training.cross_encoder.CrossEncoderConfig`` (by starting point, ``RECIPES``): the
options class inherits it, so the CLI and ``[train.cross-encoder]`` only override.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rerank.base import Formatter, parse_fields
from retrieval.errors import UsageError
from retrieval.types import Product
from search.config import AppConfig
from search.train.candidates import (
    CandidateOptions,
    compare_stages,
    open_for_training,
)
from search.train.mine import mined_rows
from search.train.registry import TrainJob, TrainReport, register_trainer
from training.reranker_config import CrossEncoderConfig

log = logging.getLogger(__name__)


@dataclass
class CrossEncoderOptions(CandidateOptions, CrossEncoderConfig):
    """``[train.cross-encoder]``: the start model, the mined negatives (optional) and the
    fine-tuning settings of ``CrossEncoderConfig`` (its defaults; None: by recipe)."""

    model: str | None = None  # hub name or local checkpoint
    negatives: str | None = None  # mined JSONL of the train split; None: mined here
    resume: bool = False


def with_fields(
    rows: list[dict[str, Any]], dataset: Any, text: Callable[[Product], str]
) -> list[dict[str, Any]]:
    """Mined rows whose texts are rebuilt from their ids (``query_id``, ``pos_ids``,
    ``neg_ids``) as ``text(product)``; a row without ids, or an id the dataset lacks, is
    one line (the rows must come from this dataset)."""
    products = {p.id: p for p in dataset.products()}
    products.update({q.id: q.product for q in dataset.queries()})
    wanted = getattr(text, "fields", ())
    absent = [f for f in wanted if not any(p.fields.get(f) for p in products.values())]
    if absent:  # a misspelt field would silently train on titles alone
        raise UsageError(f"--fields: no product of the dataset has {', '.join(map(repr, absent))}")
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(
                {
                    **row,
                    "query": text(products[row["query_id"]]),
                    "pos": [text(products[x]) for x in row["pos_ids"]],
                    "neg": [text(products[x]) for x in row["neg_ids"]],
                }
            )
        except KeyError as exc:
            raise UsageError(
                f"mined row {i + 1}: {exc.args[0]!r} is not in the dataset or the row has no "
                "ids; --fields reads each product's fields by id (mine from this dataset)"
            ) from exc
    return out


@register_trainer("cross-encoder", "reranker", CrossEncoderOptions)
def train_cross_encoder_reranker(
    cfg: AppConfig, job: TrainJob, opts: CrossEncoderOptions
) -> TrainReport:
    """Train a cross-encoder from ``opts.model`` on mined negatives and save it to
    ``job.out``; OUT keeps the best epoch by valid hit@1."""
    from rerank.cross_encoder import CrossEncoderReranker
    from retrieval.encoders.text import resolve_model  # all-MiniLM-L6-v2 -> packaged copy
    from training.cross_encoder import train_cross_encoder
    from training.ranking import sample_indices, valid_lists

    start = time.perf_counter()
    if not opts.model:
        raise UsageError("--kind cross-encoder needs --model (a hub name or a local checkpoint)")
    config = CrossEncoderConfig(
        **{f.name: getattr(opts, f.name) for f in fields(CrossEncoderConfig)}
    )
    dataset, name = open_for_training(cfg, job.dataset, job.collection, job.fmt, job.progress)
    rows, mined, vector, (valid_q, valid_rows) = mined_rows(cfg, job, opts, dataset, name)
    text = None
    if parse_fields(config.fields):  # the rows' texts: titles and those fields
        text = Formatter.from_option(config.fields)
        rows = with_fields(rows, dataset, text)
    summary = train_cross_encoder(
        rows,
        resolve_model(opts.model),
        job.out,
        config,
        valid=valid_lists(valid_q, valid_rows, text),
        resume=opts.resume,
    )
    metrics: dict[str, float] = {}
    if valid_q:  # the queries and candidates each epoch ranked, not every valid pair again
        cfg = summary["config"]
        keep = sample_indices(len(valid_q), cfg["valid_queries"], cfg["seed"])
        k = cfg["valid_k"] or None
        reranker = CrossEncoderReranker(str(job.out), max_length=config.max_length)
        metrics = compare_stages(
            reranker, [valid_q[i] for i in keep], [valid_rows[i][:k] for i in keep]
        )
    if summary["valid_table"]:
        log.info("valid per epoch (%s):\n%s", job.out, summary["valid_table"])
    if summary["verdict"]:
        log.warning("%s: %s", job.out, summary["verdict"])
    info = {
        "steps": summary["global_step"],
        "train_loss": summary["train_loss"],
        "recipe": summary["recipe"],
        "config": summary["config"],
        "best": summary["best"],
        "stage1_weight": summary["stage1_weight"],
        "valid_per_epoch": summary["valid"],
        "negatives": str(opts.negatives) if opts.negatives else "mined from stage 1",
        "mining": mined,
        # negatives left out for reading like their query or a positive (GroupRows)
        "identical_negatives": summary["identical_negatives"],
        "model": opts.model,
    }
    return TrainReport(
        "cross-encoder",
        Path(job.out),
        len(rows),
        len(valid_q),
        f"{info['steps']} steps ({summary['recipe']} recipe), loss {info['train_loss']:.4f}",
        collection=name,
        vector=vector,
        k=opts.k,
        metrics=metrics,
        losses=summary["losses"],
        evals=summary["valid"],
        info=info,
        seconds=time.perf_counter() - start,
    )
