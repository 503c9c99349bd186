"""``search train biencoder --kind text``: a sentence-transformers model on a dataset's
match pairs (same-group items, or query -> gallery match), optionally with mined hard
negatives; recall@k on the valid split each epoch. Load it with ``--encoder text:OUT``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from search.config import AppConfig

log = logging.getLogger(__name__)


@dataclass
class TextTrainReport:
    """What a text bi-encoder run did: losses per step and valid recall per epoch."""

    out: Path
    steps: int
    losses: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train_text_biencoder(
    cfg: AppConfig,
    dataset_path: str,
    out: str | Path,
    *,
    model: str,
    negatives: str | Path | None = None,
    epochs: float = 1,
    batch_size: int = 32,
    lr: float = 2e-5,
    warmup_steps: float = 0.1,
    accumulate: int = 1,
    save_steps: int = 0,
    keep: int | None = None,
    resume: bool = False,
    precision: str = "auto",
    device: str = "auto",
    split: str = "train",
    valid_split: str = "valid",
    fmt: str | None = None,
    mini_batch: int = 0,
    hard_negatives: int = 1,
    max_length: int | None = None,
    **_: Any,
) -> TextTrainReport:
    """Fine-tune a text bi-encoder on ``split`` and save it to ``out``; ``mini_batch``
    > 0 picks CachedMultipleNegativesRankingLoss with that many rows per forward pass."""
    from retrieval.data import open_dataset
    from retrieval.encoders.text import resolve_model
    from training.biencoder_text import TextBiencoderConfig, build_rows, train_text_biencoder
    from training.mining import read_mined
    from training.text_eval import RecallEvaluator

    del device  # the Trainer picks the device (cuda when there is one)
    start = time.perf_counter()
    dataset = open_dataset(dataset_path, format=fmt)
    products = {p.id: p for p in dataset.products()}
    queries = [q for q in dataset.queries(split) if q.matches]
    if not queries:
        raise UsageError(f"{dataset_path}: no labelled queries in split {split!r}")
    mined = read_mined(negatives) if negatives else []
    rows = build_rows(queries, products, mined, hard_negatives)
    evaluator = None
    valid = [q for q in dataset.queries(valid_split) if q.matches] if valid_split else []
    if valid:
        corpus = [
            (p.id, p.title)
            for p in products.values()
            if p.title and (not dataset.self_match or p.fields.get("split") == valid_split)
        ]
        evaluator = RecallEvaluator(
            [(q.id, q.product.title) for q in valid],
            corpus,
            {q.id: set(q.matches) for q in valid},
        )
    config = TextBiencoderConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        warmup=warmup_steps,
        save_steps=save_steps or 500,
        grad_accum=accumulate,
        loss="cached-mnrl" if mini_batch else "mnrl",
        mini_batch_size=mini_batch or 32,
        hard_negatives=hard_negatives,
        max_length=max_length,
        precision=precision,
        keep=keep,
    )
    log.info("%d training pairs from %d queries", len(rows), len(queries))
    summary = train_text_biencoder(
        rows, resolve_model(model), out, config, evaluator=evaluator, resume=resume
    )
    return TextTrainReport(
        Path(out),
        summary["global_step"],
        summary["losses"],
        summary["valid"],
        time.perf_counter() - start,
    )
