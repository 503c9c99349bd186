"""Cross-encoder reranker training (FlagEmbedding's recipe) on mined negatives.

Each training row is a group: the query with one positive and ``group_size - 1``
negatives (sampled per epoch, with replacement when a row has too few). Texts are
titles, or titles with product fields as the caller formatted them (``config.fields``),
read in the ``config.text`` form; both are recorded next to the weights
(``rerank.base.TEXT_SIDECAR``) so the reranker reads products alike. The loss is a
softmax cross-entropy over the group's logits with the positive as the target, or a
binary cross-entropy per pair (``loss="bce"``). The model is any HF encoder checkpoint
with a one-logit sequence-classification head (a fresh head where it has none); the
saved folder loads with ``--reranker cross-encoder:PATH``.

Defaults depend on the starting point (``RECIPES``, the one place they live; the CLI
and the ``[train.cross-encoder]`` config section only override them):

* ``fresh-head``: an encoder without a one-logit head (all-MiniLM-L6-v2, bge-base):
  the new head (and any other freshly made weights) learns at ``head_lr``, the body at
  ``lr``, for more epochs;
* ``reranker``: a finished reranker (bge-reranker-v2-m3 style): one low learning rate,
  fewer epochs, so what it knows is adjusted rather than overwritten.

With a valid set (queries with scored candidate lists), every epoch ranks it; the best
epoch by hit@1 (then MRR@10) is what ``out`` holds, ``patience`` epochs without gain
stop the run, and the per-epoch table (with stage 1's own order of the same lists as the
first row) goes to ``out/valid_epochs.md``. Then the weight of stage 1's rank added to
the kept model's logit (``rerank.base.stage1_prior``; 0 = the model alone) is chosen on
the same lists and recorded for the reranker: where the model alone ranks below stage 1
(wdc-products: valid hit@1 0.596 vs 0.648), leaning on stage 1 wins it back. Without
valid queries no choice is possible: the run says so and keeps the last epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rerank.base import TEXT_FORMS, TrainedReading, parse_fields, text_form, write_reading
from retrieval.errors import MissingExtraError, SearchError, UsageError

try:  # the `train` extra; this module is only imported by training jobs
    from transformers import TrainingArguments
except ImportError as exc:  # pragma: no cover
    raise MissingExtraError("train", exc.name or "transformers") from exc
from training.callbacks import TrainerRun, common_arguments, cpu_autocast_bf16
from training.cross_encoder_groups import GroupRows, GroupTrainer
from training.ranking import ValidList, sample_lists
from training.reranker_config import CrossEncoderConfig
from training.seeding import seed_everything
from training.selection import EpochChoice

log = logging.getLogger(__name__)
LOSSES = ("ce", "bce")


@dataclass
class RerankerTrainingArguments(TrainingArguments):
    """TrainingArguments plus the group recipe (as FlagEmbedding's reranker arguments);
    at module level so checkpoints can pickle it."""

    group_size: int = 8
    loss_kind: str = "ce"
    max_length: int = 128


def load_model(model: str) -> tuple[Any, Any, frozenset[str]]:
    """Tokenizer, one-logit classification model from a checkpoint (a fresh head if it
    has none) and the names of the parameters made fresh (empty for a finished reranker)."""
    try:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:
        raise MissingExtraError("train", exc.name or "transformers") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        net, info = AutoModelForSequenceClassification.from_pretrained(
            model, num_labels=1, ignore_mismatched_sizes=True, output_loading_info=True
        )
    except OSError as exc:
        raise SearchError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from exc
    made = {k for k in info.get("missing_keys", [])}
    made |= {m[0] if isinstance(m, tuple) else m for m in info.get("mismatched_keys", [])}
    names = {n for n, _ in net.named_parameters()}
    return tokenizer, net, frozenset(n for n in names if n in made)


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
    summary (steps, last loss, the recipe and config used, per-epoch valid metrics,
    best epoch)."""
    from transformers import TrainerCallback

    if config is not None and config.group_size < 2:
        raise UsageError("--group-size must be at least 2 (a positive and a negative)")
    out = Path(out)
    checkpoints = out / "checkpoints"
    run = TrainerRun(checkpoints, resume)
    seed_everything((config or CrossEncoderConfig()).seed)  # before the fresh head is drawn
    tokenizer, net, fresh = load_model(model)
    recipe = "fresh-head" if fresh else "reranker"
    cfg = (config or CrossEncoderConfig()).resolved(recipe)
    if cfg.loss not in LOSSES:
        raise UsageError(f"unknown loss {cfg.loss!r}; expected one of {', '.join(LOSSES)}")
    if cfg.stage1_weight is not None and not 0 <= cfg.stage1_weight < float("inf"):
        raise UsageError(f"stage1_weight must be a number >= 0, not {cfg.stage1_weight}")
    if cfg.text not in TEXT_FORMS:
        raise UsageError(f"unknown text form {cfg.text!r}; expected one of {', '.join(TEXT_FORMS)}")
    data = GroupRows(rows, cfg.group_size, cfg.seed, cfg.text)
    valid = [
        replace(
            v,
            query=text_form(v.query, cfg.text),
            texts=tuple(text_form(t, cfg.text) for t in v.texts),
        )
        for v in sample_lists(valid, cfg.valid_queries, cfg.valid_k, cfg.seed)
    ]
    log.info("cross-encoder: %s recipe (%d fresh tensors): %s", recipe, len(fresh), cfg.as_dict())
    args = RerankerTrainingArguments(
        **common_arguments(checkpoints, cfg),
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

    cpu_bf16 = not args.bf16 and cfg.precision == "auto" and args.device.type == "cpu"
    cpu_bf16 = cpu_bf16 and cpu_autocast_bf16()  # native bf16 on this CPU: autocast
    bf16 = args.bf16 or cpu_bf16
    reading = TrainedReading(cfg.text, parse_fields(cfg.fields), cfg.stage1_weight or 0.0)
    choice = EpochChoice(
        valid,
        out,
        lambda lists: score_lists(trainer.model, tokenizer, lists, cfg.max_length, bf16=bf16),
        lambda folder: save_model(trainer.model, tokenizer, folder, reading),
        patience=cfg.patience,
        resume=resume,
    )

    class EpochEval(TrainerCallback):
        def on_epoch_begin(self, args, state_, control, **kwargs):
            data.epoch = int((state_.epoch or 0) + 1e-6)  # a resumed run: mid-epoch

        def on_epoch_end(self, args, state_, control, **kwargs):
            if choice.epoch_end(state_.epoch or 0, state_.global_step):
                control.should_training_stop = True
            return control

    trainer = GroupTrainer(
        model=net,
        args=args,
        train_dataset=data,
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=run.callbacks(EpochEval()),
        fresh=fresh,
        head_lr=cfg.head_lr,
        cpu_bf16=cpu_bf16,
    )
    result = run.train(trainer)
    if not choice.chose:
        save_model(trainer.model, tokenizer, out, reading)
    elif cfg.stage1_weight is None:  # how far the kept model leans on stage 1: valid says

        def rescore() -> list[list[float]]:
            _, kept, _ = load_model(str(out))
            return score_lists(kept, tokenizer, valid, cfg.max_length, bf16=bf16)

        reading = replace(reading, stage1_weight=choice.choose_stage1_weight(rescore))
        write_reading(out, reading)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "losses": losses,
        "recipe": recipe,
        "config": cfg.as_dict(),
        "valid": choice.history,
        "valid_queries": len(valid),
        "identical_negatives": data.identical,
        "valid_table": choice.table() if valid else "",
        "best": choice.best(),
        "stage1_weight": reading.stage1_weight,
        "valid_stage1": choice.stage1,
        "verdict": choice.verdict(),
        "out": str(out),
    }


def save_model(model: Any, tokenizer: Any, out: Path, reading: TrainedReading) -> None:
    """Save weights, config and tokenizer where CrossEncoder(out) loads them, and how the
    model reads products and leans on stage 1 (``rerank.base.write_reading``)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_reading(out, reading)


def score_lists(
    model: Any,
    tokenizer: Any,
    lists: Sequence[ValidList],
    max_length: int,
    batch_size: int = 64,
    *,
    bf16: bool = False,
) -> list[list[float]]:
    """Logits of every (query, candidate) pair of each list, in list order (under bf16
    autocast when the model trains so), under a progress bar (a valid pass is minutes on a
    CPU: 10,000 pairs on Abt-Buy)."""
    import torch
    from tqdm.auto import tqdm

    pairs = [(v.query, t) for v in lists for t in v.texts]
    was_training = model.training
    model.eval()
    flat: list[float] = []
    device = next(model.parameters()).device
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
        starts = range(0, len(pairs), batch_size)
        for s in tqdm(starts, desc="valid pairs", unit="batch", leave=False):
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
