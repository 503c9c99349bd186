"""Cross-encoder reranker training (FlagEmbedding's recipe) on mined negatives.

Each training row is a group: the query with one positive and ``group_size - 1``
negatives (sampled per epoch, with replacement when a row has too few). The loss is a
softmax cross-entropy over the group's logits with the positive as the target, or a
binary cross-entropy per pair (``loss="bce"``). The model is any HF encoder checkpoint
with a one-logit sequence-classification head (a fresh head where it has none); the
saved folder loads with ``--reranker cross-encoder:PATH``.

With a valid set (queries with scored candidate lists), every epoch ranks it; the best
epoch by hit@1 is what ``out`` holds, and ``patience`` epochs without gain stop the run.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.atomic import write_json
from retrieval.errors import MissingExtraError, SearchError, UsageError

try:  # the `train` extra; this module is only imported by training jobs
    from transformers import Trainer, TrainingArguments
except ImportError as exc:  # pragma: no cover
    raise MissingExtraError("train", exc.name or "transformers") from exc
from training.callbacks import (
    common_arguments,
    nan_stop_callback,
    raise_if_diverged,
    resume_checkpoint,
)
from training.ranking import ValidList, rank_metrics
from training.resume import refused_checkpoint

log = logging.getLogger(__name__)
LOSSES = ("ce", "bce")


@dataclass
class CrossEncoderConfig:
    """What a cross-encoder training run is asked for."""

    epochs: float = 2.0
    batch_size: int = 8  # groups per step (pairs = batch_size * group_size)
    group_size: int = 8
    lr: float = 2e-5
    warmup: float = 0.1
    save_steps: int = 500
    grad_accum: int = 1
    max_length: int = 128
    loss: str = "ce"
    patience: int = 0  # epochs without a better valid hit@1 before stopping; 0: never
    seed: int = 0
    precision: str = "auto"
    max_steps: int = -1


@dataclass
class RerankerTrainingArguments(TrainingArguments):
    """TrainingArguments plus the group recipe (as FlagEmbedding's reranker arguments);
    at module level so checkpoints can pickle it."""

    group_size: int = 8
    loss_kind: str = "ce"
    max_length: int = 128


class GroupRows:
    """Torch-style dataset: item i is the (query, text) pairs of one group, positive first.

    Negatives are drawn from a generator seeded by (seed, epoch, i): a resumed run that
    replays an epoch draws the same groups."""

    def __init__(self, rows: Sequence[dict[str, Any]], group_size: int, seed: int = 0) -> None:
        self.rows = [r for r in rows if r.get("pos") and r.get("neg")]
        dropped = len(rows) - len(self.rows)
        if dropped:
            log.warning("%d rows without a positive or a negative are left out", dropped)
        if not self.rows:
            raise UsageError("no training rows with both a positive and a negative")
        self.group_size, self.seed, self.epoch = group_size, seed, 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> list[tuple[str, str]]:
        row = self.rows[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        k = self.group_size - 1
        negs = row["neg"]
        picked = rng.sample(negs, k) if len(negs) >= k else rng.choices(negs, k=k)
        return [(row["query"], t) for t in [rng.choice(row["pos"]), *picked]]


class GroupTrainer(Trainer):
    """A Trainer whose loss reads each ``group_size`` logits as one softmax group."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        outputs = model(**inputs)
        scores = outputs.logits.float().view(-1, self.args.group_size)
        if self.args.loss_kind == "bce":
            target = torch.zeros_like(scores)
            target[:, 0] = 1.0
            loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, target)
        else:
            target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
            loss = torch.nn.functional.cross_entropy(scores, target)
        return (loss, outputs) if return_outputs else loss


def load_model(model: str) -> tuple[Any, Any]:
    """Tokenizer and one-logit classification model from a checkpoint (fresh head if none)."""
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError("train", exc.name or "transformers") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        net = AutoModelForSequenceClassification.from_pretrained(
            model, num_labels=1, ignore_mismatched_sizes=True
        )
    except OSError as exc:
        raise SearchError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from exc
    return tokenizer, net


def train_cross_encoder(
    rows: Sequence[dict[str, Any]],
    model: str,
    out: str | Path,
    config: CrossEncoderConfig | None = None,
    *,
    valid: Sequence[ValidList] = (),
    resume: bool = False,
) -> dict[str, Any]:
    """Train on mined rows (``query``, ``pos``, ``neg``) and save to ``out``; returns a
    summary (steps, last loss, per-epoch valid metrics, best epoch)."""
    from transformers import TrainerCallback

    cfg = config or CrossEncoderConfig()
    if cfg.loss not in LOSSES:
        raise UsageError(f"unknown loss {cfg.loss!r}; expected one of {', '.join(LOSSES)}")
    if cfg.group_size < 2:
        raise UsageError("--group-size must be at least 2 (a positive and a negative)")
    out = Path(out)
    checkpoints = out / "checkpoints"
    start_from = resume_checkpoint(checkpoints, resume)
    data = GroupRows(rows, cfg.group_size, cfg.seed)
    tokenizer, net = load_model(model)
    args = RerankerTrainingArguments(
        **common_arguments(
            checkpoints,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            warmup=cfg.warmup,
            save_steps=cfg.save_steps,
            grad_accum=cfg.grad_accum,
            seed=cfg.seed,
            precision=cfg.precision,
            max_steps=cfg.max_steps,
        ),
        remove_unused_columns=False,
        group_size=cfg.group_size,
        loss_kind=cfg.loss,
        max_length=cfg.max_length,
    )

    def collate(groups: list[list[tuple[str, str]]]) -> dict[str, Any]:
        pairs = [p for g in groups for p in g]
        return dict(
            tokenizer(
                [q for q, _ in pairs],
                [t for _, t in pairs],
                padding=True,
                truncation=True,
                max_length=cfg.max_length,
                return_tensors="pt",
            )
        )

    best_file = out / "best.json"
    state: dict[str, Any] = (
        json.loads(best_file.read_text()) if resume and best_file.is_file() else {}
    )
    history: list[dict[str, float]] = []

    class EpochEval(TrainerCallback):
        def on_epoch_begin(self, args, state_, control, **kwargs):
            data.epoch = int((state_.epoch or 0) + 1e-6)  # a resumed run: mid-epoch

        def on_epoch_end(self, args, state_, control, model=None, **kwargs):
            if not valid:
                return control
            scores = score_lists(model, tokenizer, valid, cfg.max_length)
            metrics = rank_metrics(valid, scores)
            metrics["epoch"] = round(state_.epoch or 0, 3)
            history.append(metrics)
            log.info("valid after epoch %s: %s", metrics["epoch"], metrics)
            if metrics["hit@1"] > state.get("hit@1", -1.0):
                state.update(metrics, stale=0, step=state_.global_step)
                save_model(model, tokenizer, out)
                write_json(best_file, state)
            else:
                state["stale"] = state.get("stale", 0) + 1
                write_json(best_file, state)
                if cfg.patience and state["stale"] >= cfg.patience:
                    log.info("no gain on valid for %d epochs: stopping", state["stale"])
                    control.should_training_stop = True
            return control

    stop = nan_stop_callback()
    trainer = GroupTrainer(
        model=net,
        args=args,
        train_dataset=data,
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=[stop, EpochEval()],
    )
    with refused_checkpoint(start_from):
        result = trainer.train(resume_from_checkpoint=start_from)
    raise_if_diverged(stop, checkpoints)
    if not valid:
        save_model(trainer.model, tokenizer, out)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "losses": losses,
        "valid": history,
        "best": {k: v for k, v in state.items() if k != "stale"},
        "out": str(out),
    }


def save_model(model: Any, tokenizer: Any, out: Path) -> None:
    """Save weights, config and tokenizer where CrossEncoder(out) loads them."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def score_lists(
    model: Any, tokenizer: Any, lists: Sequence[ValidList], max_length: int, batch_size: int = 64
) -> list[list[float]]:
    """Logits of every (query, candidate) pair of each list, in list order."""
    import torch

    pairs = [(v.query, t) for v in lists for t in v.texts]
    was_training = model.training
    model.eval()
    flat: list[float] = []
    device = next(model.parameters()).device
    with torch.inference_mode():
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s : s + batch_size]
            enc = tokenizer(
                [q for q, _ in chunk],
                [t for _, t in chunk],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            flat.extend(model(**enc).logits.float().view(-1).tolist())
    if was_training:
        model.train()
    out, at = [], 0
    for v in lists:
        out.append(flat[at : at + len(v.texts)])
        at += len(v.texts)
    return out
