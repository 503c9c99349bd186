"""A text encoder fine-tuned on a catalogue's train groups: the loss and the step count
chosen on valid.

What ``search eval --fine-tune text`` runs: in-batch negatives
(``training.text.train_text_biencoder``, loss ``mnrl``) over every same-group title pair
of the train split (with ``hard_negatives`` > 0, each pair also gets that many mined
negatives: the train titles of other groups that the start model itself ranks nearest the
anchor, ``mine_train``), and ArcFace (``training.arcface_text``, loss ``arcface``) over
the train titles as samples of their groups; each evaluated every ``eval_steps`` steps by the
match F1 of its cosine on the valid split (``training.match_eval``), its best step kept,
its run stopped once ``patience`` evaluations in a row bring no gain. ``loss = "best"``
trains both (each into ``OUT/<loss>``, with a ``fit.json`` once finished, so a resumed
run skips it) and keeps the one with the higher valid F1. The zero-shot model is scored
first, so a run that never beats it says so (and the caller keeps the zero-shot
encoder). The valid and test listings are never trained on.

Each loss's step time is measured on its first steps and reported (``announce``) as an
estimate of its run, and a progress bar follows the steps (``training.catalogue_fit``, shared
with the image fine-tuning).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.errors import UsageError
from retrieval.types import Hit, Product, ProgressFactory, Query
from training.catalogue_fit import (
    Announce,
    CatalogueFit,
    FitSchedule,
    LossRun,
    StepClock,
    arcface_run,
    arcface_schedule,
    fit_losses,
)
from training.match_eval import MatchF1Evaluator
from training.mining import MineConfig, mine_negatives
from training.text import PairRows, TextBiencoderConfig, build_rows, train_text_biencoder

log = logging.getLogger(__name__)
LOSSES = ("mnrl", "arcface")
LOSS_CHOICES = (*LOSSES, "best")
TextFitResult = CatalogueFit  # what fit_catalogue_text returns
MINE_RANKS = 50  # hard negatives come from the start model's 50 nearest train titles
MINE_BATCH = 1024  # titles encoded per progress tick
MINE_SPARE = 2  # negatives mined beyond those used, for build_rows' identical-title guard


@dataclass
class TextFitArgs(FitSchedule):
    """The fine-tuning of ``search eval --fine-tune text`` (``[fine_tune]`` in a config)."""

    loss: str = "best"  # "mnrl", "arcface", or "best": both, the better on valid kept
    hard_negatives: int = 0  # mnrl: mined negatives per title pair (0: in-batch only)

    def losses(self) -> tuple[str, ...]:
        if self.loss not in LOSS_CHOICES:
            raise UsageError(
                f"unknown loss {self.loss!r}; expected one of {', '.join(LOSS_CHOICES)}"
            )
        return LOSSES if self.loss == "best" else (self.loss,)


def valid_evaluator(valid: Sequence[Product]) -> MatchF1Evaluator | None:
    """The match-F1 evaluator over valid's titled, grouped listings (None if too few)."""
    kept = [p for p in valid if p.group and p.title.strip()]
    if len(kept) < 2:
        return None
    return MatchF1Evaluator([p.title for p in kept], [str(p.group) for p in kept])


def fit_catalogue_text(
    train_queries: Sequence[Query],
    products: dict[str, Product],
    valid: Sequence[Product],
    args: TextFitArgs,
    progress: ProgressFactory | None = None,
    announce: Announce | None = None,
) -> TextFitResult:
    """Fine-tune ``args.model`` on the train queries' groups with each loss of
    ``args.loss`` into ``args.out/<loss>``; the best on valid is the result."""
    from sentence_transformers import SentenceTransformer

    losses = args.losses()
    rows = build_rows(train_queries, products)
    groups = len(set(rows.groups))
    evaluator = valid_evaluator(valid)
    if evaluator is None:
        raise UsageError("the valid split has under 2 grouped, titled listings: no step to choose")
    if groups < args.batch_size:
        why = (
            f"the train split has {groups} match groups with title pairs, fewer than a batch "
            f"of {args.batch_size}: a batch cannot avoid two items of one group"
        )
        return CatalogueFit.skip(why)
    start = SentenceTransformer(args.model, device="cpu")  # scored, and mines the negatives
    zero = evaluator(start)["valid_match_f1"]
    log.info("zero-shot valid match F1 %.4f; %d pairs in %d groups", zero, len(rows), groups)

    def run(loss: str, out: Path, clock: StepClock) -> LossRun:
        if loss == "mnrl":
            mined = mine_train(train_queries, products, start, args, progress)
            rows_mnrl = build_rows(train_queries, products, mined, args.hard_negatives)
            return _fit_mnrl(rows_mnrl if mined else rows, evaluator, args, out, clock)
        return _fit_arcface(train_queries, products, evaluator, args, out, clock)

    return fit_losses("text", losses, args, zero, run, progress, announce)


def mine_train(
    train_queries: Sequence[Query],
    products: dict[str, Product],
    model: Any,
    args: TextFitArgs,
    progress: ProgressFactory | None = None,
) -> list[dict[str, Any]]:
    """``args.hard_negatives`` hard negatives per train query, from the train split alone:
    ``model`` (the start model, a SentenceTransformer) encodes every train title, and ``training.mining`` keeps the nearest
    listings of other groups (ranks 1-50; its false-negative guard drops any scored 0.3
    above the best match). Deterministic, so a resumed run mines the same rows."""
    import numpy as np

    if args.hard_negatives <= 0:
        return []
    ids = sorted({q.id for q in train_queries} | {m for q in train_queries for m in q.matches})
    ids = [i for i in ids if i in products and products[i].title.strip()]
    tick = progress("mine hard negatives (train titles)", len(ids)) if progress else None
    titles, parts = [products[i].title for i in ids], []
    for start in range(0, len(ids), MINE_BATCH):
        chunk = titles[start : start + MINE_BATCH]
        parts.append(model.encode(chunk, batch_size=64, normalize_embeddings=True))
        if tick is not None:
            tick(len(chunk))
    vecs = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 1), np.float32)
    row_of = {i: k for k, i in enumerate(ids)}
    # spares: build_rows drops a negative titled like its query or match, and takes the
    # first ``hard_negatives`` of those left
    spare = args.hard_negatives + MINE_SPARE
    config = MineConfig(ranks=(1, MINE_RANKS), hard=spare, random=0, seed=args.seed)
    queries = [q for q in train_queries if q.id in row_of]
    hits = []
    for q in queries:
        scores = vecs @ vecs[row_of[q.id]]
        top = np.argsort(-scores)[: MINE_RANKS + 1]
        hits.append([
            Hit(ids[j], float(scores[j]), {"group": products[ids[j]].group, "title": titles[j]})
            for j in top if ids[j] != q.id
        ])  # fmt: skip
    return mine_negatives(queries, hits, products, config, gallery=[])


def _fit_mnrl(
    rows: PairRows, evaluator: MatchF1Evaluator, args: TextFitArgs, out: Path, clock: StepClock
) -> LossRun:
    """In-batch negatives over the same-group title pairs (``training.text``)."""
    from training.callbacks import last_checkpoint

    config = TextBiencoderConfig(
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=args.warmup,
        epochs=1.0,  # max_steps rules
        max_steps=args.max_steps,
        eval_steps=args.eval_steps,
        patience=args.patience,
        keep=1,
        seed=args.seed,
    )
    resume = args.resume and last_checkpoint(out / "checkpoints") is not None
    summary = train_text_biencoder(
        rows, args.model, out, config, evaluator=evaluator, resume=resume,
        callbacks=[clock.callback()], quiet=True,
    )  # fmt: skip
    evals = [
        {"step": e.get("step"), **{k: v for k, v in e.items() if k.startswith("eval_valid")}}
        for e in summary["valid"]
    ]
    best = float(summary["best_metric"] or 0.0)
    return summary["best_step"], best, int(summary["global_step"]), evals


def _fit_arcface(
    train_queries: Sequence[Query],
    products: dict[str, Product],
    evaluator: MatchF1Evaluator,
    args: TextFitArgs,
    out: Path,
    clock: StepClock,
) -> LossRun:
    """ArcFace over the train titles, their groups the classes (``training.arcface_text``)."""
    from training.arcface_text import TextArcFaceArgs, fit_text_arcface

    ids = {q.id for q in train_queries} | {m for q in train_queries for m in q.matches}
    train = [products[i] for i in sorted(ids) if i in products]
    arc = TextArcFaceArgs(model=args.model, **arcface_schedule(args, out, len(train)))
    result, best, _ = fit_text_arcface(train, [], arc, score=evaluator, on_step=clock.step)
    return arcface_run(result, best)
