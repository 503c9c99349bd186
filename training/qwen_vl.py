"""Fine-tuning a Qwen-VL yes/no reranker with LoRA on (query, candidate, label) pairs.

The prompts, images, answer tokens and answer position are the ``qwen-vl`` reranker's own
(``rerank.qwen_vl``): a pair is prepared by the same ``QwenVLReranker.prepare`` and read
at the same logits by ``answer_logits``, so the saved model scores as it was trained.
The loss is the cross-entropy over the ``[yes, no]`` logits at the answer position
(binary cross-entropy on P(yes) against the label). Only LoRA adapters of the language
model train; the vision tower and the base weights stay frozen. The saved model has the
adapters merged in, so ``search eval --reranker qwen-vl:OUT`` loads it with no peft.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback, TrainingArguments

from rerank.base import TrainedReading, write_reading
from rerank.qwen_vl import QwenVLReranker, answer_logits
from retrieval.errors import UsageError
from retrieval.types import Product, Query
from training.callbacks import complete_marker_callback, resume_checkpoint
from training.ranking import ValidList
from training.resume import diverged, refused_checkpoint
from training.seeding import seed_everything
from training.selection import EpochChoice

log = logging.getLogger(__name__)

Example = tuple[Product, Product, int]  # query, candidate, 1 for a match


@dataclass
class QwenVLTrainingArguments(TrainingArguments):
    """The Trainer's arguments plus the LoRA ones, with reranker-training defaults."""

    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "Comma-separated language-model module names that get adapters."},
    )
    remove_unused_columns: bool = False
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.05
    learning_rate: float = 1e-4
    save_strategy: str = "steps"
    logging_steps: float = 10
    report_to: str | list[str] | None = "none"


def pair_examples(
    queries: Sequence[Query],
    products: Mapping[str, Product],
    negatives: Mapping[str, Sequence[str]],
    ratio: int = 3,
    seed: int = 0,
) -> list[Example]:
    """Each query's matches as positives and ``ratio`` negatives per positive, sampled
    from ``negatives[query id]``; ids missing from ``products`` are skipped."""
    if ratio < 0:
        raise UsageError(f"negative ratio must be at least 0, got {ratio}")
    rng = random.Random(seed)
    out: list[Example] = []
    for query in queries:
        pos = [products[m] for m in query.matches if m in products and m != query.id]
        pool = [products[n] for n in negatives.get(query.id, ()) if n in products]
        if not pos:
            continue
        out.extend((query.product, p, 1) for p in pos)
        out.extend(
            (query.product, n, 0) for n in rng.sample(pool, min(len(pool), ratio * len(pos)))
        )
    return out


class PairCollator:
    """Pairs -> the reranker's padded chat inputs (answer position last) and 0/1 labels."""

    def __init__(self, reranker: QwenVLReranker) -> None:
        self.reranker = reranker

    def __call__(self, rows: Sequence[Example]) -> Any:
        import torch

        batch = self.reranker.encode([self.reranker.prepare(q, c) for q, c, _ in rows])
        batch["labels"] = torch.tensor([label for _, _, label in rows], dtype=torch.long)
        return batch


class StopOnNonFinite(TrainerCallback):
    """Stops a run whose loss is NaN or infinite, naming the step and the last checkpoint
    saved before it (which is kept: the bad step never updates the weights)."""

    def __init__(self) -> None:
        self.last_checkpoint: str | None = None

    def on_save(self, args, state, control, **kwargs):
        self.last_checkpoint = str(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def check(self, loss: Any, step: int) -> None:
        """Raise TrainingDivergedError if ``loss`` is not finite."""
        import torch

        if not bool(torch.isfinite(loss).all()):
            raise diverged(f"loss {float(loss)}", step, self.last_checkpoint)


class YesNoTrainer(Trainer):
    """A Trainer whose loss is the cross-entropy over the ``[yes, no]`` answer logits."""

    def __init__(self, *args: Any, token_ids: Sequence[int], guard: StopOnNonFinite, **kw: Any):
        super().__init__(*args, **kw)
        self.token_ids = list(token_ids)
        self.guard = guard
        self.losses: list[float] = []
        # the loss is a mean over the batch: the Trainer must scale it for accumulation
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch.nn.functional as F

        labels = inputs.pop("labels")
        logits = answer_logits(model, inputs, self.token_ids).float()
        loss = F.cross_entropy(logits, 1 - labels)  # class 0 is yes
        self.guard.check(loss.detach(), self.state.global_step + 1)
        self.losses.append(float(loss.detach()))
        return (loss, logits) if return_outputs else loss


def add_lora(model: Any, args: QwenVLTrainingArguments) -> Any:
    """Wrap ``model`` in LoRA adapters on the language model's ``target_modules`` only."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        from retrieval.errors import MissingExtraError

        raise MissingExtraError("train", exc.name or "peft") from exc
    names = [n.strip() for n in args.target_modules.split(",") if n.strip()]
    if not names:
        raise UsageError("target_modules is empty")
    # a regex peft full-matches against module paths: skip the vision tower
    pattern = rf"^(?!.*visual).*\.({'|'.join(names)})$"
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=pattern,
        bias="none",
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:
        raise UsageError(f"LoRA target_modules {args.target_modules!r}: {exc}") from exc
    if args.gradient_checkpointing:
        peft_model.enable_input_require_grads()
    return peft_model


def train_qwen_vl(
    reranker: QwenVLReranker,
    examples: Sequence[Example],
    args: QwenVLTrainingArguments,
    out: str | Path,
    *,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] = (),
    valid: Sequence[ValidItem] = (),
    patience: int = 0,
) -> dict[str, Any]:
    """Fine-tune ``reranker.model`` with LoRA, checkpointing to ``args.output_dir``; save
    the merged model and the processor to ``out`` and the adapters to ``out/adapter``.
    With ``valid`` lists (query, stage-1 candidates, 0/1 labels) every epoch ranks them
    and the best epoch's adapters are the ones merged (``training.selection``); without,
    the last epoch is kept. The reranker then holds the merged model in eval mode."""
    if not examples:
        raise UsageError("no training pairs: the split has no queries with matches")
    checkpoint = resume_checkpoint(Path(args.output_dir), resume)
    seed_everything(args.seed)  # before the LoRA adapters are drawn
    model = add_lora(reranker.model, args)
    model.train()
    choice, best = _epoch_choice(reranker, model, valid, Path(out), patience, resume)
    guard = StopOnNonFinite()
    trainer = YesNoTrainer(
        model=model,
        args=args,
        train_dataset=list(examples),
        data_collator=PairCollator(reranker),
        callbacks=[guard, _ChoiceCallback(choice), complete_marker_callback(), *callbacks],
        token_ids=reranker.token_ids,
        guard=guard,
    )
    start_step = 0
    if checkpoint:
        start_step = int(Path(checkpoint).name.rsplit("-", 1)[1])
    with refused_checkpoint(checkpoint):
        result = trainer.train(resume_from_checkpoint=checkpoint)
    if choice.chose and best:
        _restore(model, best)
        log.info(
            "kept epoch %s of %d (valid hit@1 %.3f)",
            choice.state.get("epoch"),
            len(choice.history),
            choice.state["hit@1"],
        )
    # how far the kept model leans on stage 1's rank, chosen on valid as the cross-encoder's
    weight = choice.choose_stage1_weight(lambda: choice.score(choice.valid))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "adapter")
    merged = model.merge_and_unload()
    merged.save_pretrained(out)
    reranker.processor.save_pretrained(out)
    write_reading(out, TrainedReading(stage1_weight=weight))
    reranker.model = merged.eval()
    reranker.stage1_weight = weight
    log.info("saved the merged model to %s and the adapters to %s", out, out / "adapter")
    return {
        "steps": trainer.state.global_step,
        "start_step": start_step,
        "train_loss": result.training_loss,
        "losses": trainer.losses,
        "pairs": len(examples),
        "positives": sum(label for _, _, label in examples),
        "valid": choice.history,
        "valid_queries": len(valid),
        "valid_table": choice.table() if valid else "",
        "best": choice.best(),
        "stage1_weight": weight,
        "valid_stage1": choice.stage1,
        "verdict": choice.verdict(),
    }


ValidItem = tuple[Product, Sequence[Any], Sequence[int]]  # query, candidates, labels


class _ChoiceCallback(TrainerCallback):
    """Runs the valid check at each epoch's end; stops on ``patience``."""

    def __init__(self, choice: EpochChoice) -> None:
        self.choice = choice

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.choice.epoch_end(state.epoch or 0, state.global_step):
            control.should_training_stop = True
        return control


def _epoch_choice(
    reranker: QwenVLReranker,
    model: Any,
    valid: Sequence[ValidItem],
    out: Path,
    patience: int,
    resume: bool,
) -> tuple[EpochChoice, dict[str, Any]]:
    """An EpochChoice that scores the valid lists with the model being trained and keeps
    the best epoch's LoRA weights in memory (a copy of the trainable tensors)."""
    lists = [
        ValidList(q.title, tuple(c.product.title for c in cands), tuple(labels))
        for q, cands, labels in valid
    ]
    best: dict[str, Any] = {}

    def score(_: Sequence[ValidList]) -> list[list[float]]:
        model.eval()
        try:
            flat = reranker.margins([(q, c) for q, cands, _ in valid for c in cands])
        finally:
            model.train()
        out_, at = [], 0
        for _, cands, _ in valid:
            out_.append(flat[at : at + len(cands)])
            at += len(cands)
        return out_

    def keep(_: Path) -> None:
        best.clear()
        best.update({n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad})

    return EpochChoice(lists, out, score, keep, patience=patience, resume=resume), best


def _restore(model: Any, best: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in best:
                param.copy_(best[name])
