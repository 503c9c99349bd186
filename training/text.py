"""Text bi-encoder fine-tuning through sentence-transformers.

Rows are (anchor, positive[, negative_1..n]) texts: every labelled query with each of
its matches (same-group items on group-labelled sets, query -> gallery match on
query/gallery sets), plus mined hard negatives as extra columns. The loss is
MultipleNegativesRankingLoss (in-batch negatives) or its cached variant for big
batches; ``training.sampler.GroupBatchSampler`` (through GroupedTextBatchSampler)
keeps rows of one group, and rows whose hard negatives are of that group, out of each
other's batches. Each
epoch reports stage-1 recall@k on the valid split; the model saved in OUT loads with
``--encoder text:OUT``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from retrieval.errors import MissingExtraError, SearchError, UsageError
from retrieval.types import Product, Query

try:  # the `train` extra; this module is only imported by training jobs
    from sentence_transformers import DefaultBatchSampler, SentenceTransformerTrainingArguments
except ImportError as exc:  # pragma: no cover
    raise MissingExtraError("train", exc.name or "sentence-transformers") from exc

from training.callbacks import TrainerRun, common_arguments
from training.mining import unlike
from training.sampler import GroupBatchSampler
from training.seeding import seed_everything

log = logging.getLogger(__name__)
LOSSES = ("mnrl", "cached-mnrl")


class GroupedTextBatchSampler(DefaultBatchSampler):
    """sentence-transformers' batch-sampler interface over GroupBatchSampler: the
    trainer's ``set_epoch`` picks the epoch's order (fixed by seed and epoch, so a
    resumed run replays it)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        groups: Sequence[str],
        neg_groups: Sequence[frozenset[str]] = (),
    ) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        self.group_batches = GroupBatchSampler(
            groups, batch_size, seed=seed, neg_groups=neg_groups, drop_last=drop_last
        )

    def __iter__(self) -> Iterator[list[int]]:
        self.group_batches.set_position(self.epoch)
        yield from self.group_batches

    def __len__(self) -> int:
        return self.group_batches.epoch_length(self.epoch)


@dataclass
class TextBiencoderArguments(SentenceTransformerTrainingArguments):
    """sentence-transformers' arguments plus the loss choice (module level: pickled)."""

    loss_kind: str = "mnrl"
    mini_batch_size: int = 32


@dataclass
class TextBiencoderConfig:
    """What a text bi-encoder training run is asked for."""

    epochs: float = 1.0
    batch_size: int = 32
    lr: float = 2e-5
    warmup: float = 0.1
    save_steps: int = 500
    grad_accum: int = 1
    loss: str = "mnrl"
    mini_batch_size: int = 32  # cached-mnrl: rows per forward pass
    hard_negatives: int = 1  # mined negatives per row, as extra columns
    max_length: int | None = None
    seed: int = 0
    precision: str = "auto"
    max_steps: int = -1
    keep: int | None = 3  # checkpoints kept
    # > 0: the evaluator runs every eval_steps steps (a checkpoint each time), the best
    # step's model is the one saved, and the run stops after `patience` evaluations
    # without a gain (0: runs to the end)
    eval_steps: int = 0
    patience: int = 0


@dataclass
class PairRows:
    """Training rows as columns, with each row's group and its negatives' groups."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    neg_groups: list[frozenset[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.groups)


def match_components(queries: Sequence[Query]) -> dict[str, str]:
    """Union-find over query -> match links: id -> a representative of its group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for q in queries:
        for m in q.matches:
            parent[find(q.id)] = find(m)
    return {x: find(x) for x in list(parent)}


def build_rows(
    queries: Sequence[Query],
    products: Mapping[str, Product],
    mined: Sequence[dict[str, Any]] = (),
    hard_negatives: int = 1,
) -> PairRows:
    """One row per (query, known match); with ``mined`` rows (by ``query_id``), each row
    gets ``hard_negatives`` negative columns and rows of unmined queries are left out;
    mined negatives titled like the query or a match are dropped (``training.mining.unlike``)."""
    comp = match_components(queries)
    negs = {str(r["query_id"]): list(r.get("neg_ids") or []) for r in mined if "query_id" in r}
    n_neg = hard_negatives if mined else 0
    rows = PairRows(
        {"anchor": [], "positive": [], **{f"negative_{i + 1}": [] for i in range(n_neg)}}
    )
    skipped = identical = 0
    for q in queries:
        text = q.product.title
        neg_ids = [n for n in negs.get(q.id, []) if n in products and products[n].title]
        if text and neg_ids:  # a negative titled like the query or a match teaches noise
            titles = [products[m].title for m in q.matches if m in products]
            kept = [neg_ids[i] for i in unlike([products[n].title for n in neg_ids], text, *titles)]
            identical, neg_ids = identical + len(neg_ids) - len(kept), kept
        if not text or (n_neg and not neg_ids):
            skipped += bool(q.matches)
            continue
        for m in q.matches:
            if m not in products or not products[m].title:
                continue
            rows.columns["anchor"].append(text)
            rows.columns["positive"].append(products[m].title)
            for i in range(n_neg):
                rows.columns[f"negative_{i + 1}"].append(products[neg_ids[i % len(neg_ids)]].title)
            rows.groups.append(comp.get(q.id, q.id))
            rows.neg_groups.append(frozenset(comp.get(n, n) for n in neg_ids[:n_neg]))
    if identical:
        log.warning("%d mined negatives titled like their query or a match are left out", identical)
    if skipped:
        log.warning("%d queries without a title or mined negatives are left out", skipped)
    return rows


def check_groups(rows: PairRows, batch_size: int) -> None:
    """A batch needs ``batch_size`` distinct groups: say so before training starts."""
    n = len(set(rows.groups))
    if not rows.groups:
        raise UsageError("no training pairs: the split has no labelled queries with titles")
    if n < batch_size:
        raise UsageError(
            f"only {n} match groups in the training split, fewer than --batch-size "
            f"{batch_size}: a batch cannot avoid two items of one group; lower --batch-size"
        )


def train_text_biencoder(
    rows: PairRows,
    model: str,
    out: str | Path,
    config: TextBiencoderConfig | None = None,
    *,
    evaluator: Any = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    quiet: bool = False,
) -> dict[str, Any]:
    """Fine-tune a SentenceTransformer on ``rows`` and save it to ``out``; with
    ``config.eval_steps`` the step count is chosen by ``evaluator``'s primary metric
    (``best_step`` in the summary). ``quiet``: no bar or per-step log lines of the
    Trainer's own (the caller's ``callbacks`` show progress)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.losses import (
        CachedMultipleNegativesRankingLoss,
        MultipleNegativesRankingLoss,
    )

    cfg = config or TextBiencoderConfig()
    if cfg.loss not in LOSSES:
        raise UsageError(f"unknown loss {cfg.loss!r}; expected one of {', '.join(LOSSES)}")
    check_groups(rows, cfg.batch_size)
    out = Path(out)
    checkpoints = out / "checkpoints"
    run = TrainerRun(checkpoints, resume)
    seed_everything(cfg.seed)  # before any module the model adds is drawn
    try:
        st = SentenceTransformer(model)
    except Exception as exc:  # hub misses, broken folders: one clear line
        raise SearchError(f"cannot load text model {model!r}: {str(exc).splitlines()[0]}") from exc
    if cfg.max_length:
        st.max_seq_length = cfg.max_length
    sampler = partial(GroupedTextBatchSampler, groups=rows.groups, neg_groups=rows.neg_groups)
    stepped = bool(cfg.eval_steps and evaluator is not None)
    args = TextBiencoderArguments(
        **common_arguments(
            checkpoints, cfg, save_steps=cfg.eval_steps if stepped else None, keep=cfg.keep
        ),
        batch_sampler=sampler,
        eval_strategy="no" if evaluator is None else "steps" if stepped else "epoch",
        loss_kind=cfg.loss,
        **(_best_step_arguments(cfg, evaluator) if stepped else {}),
        mini_batch_size=cfg.mini_batch_size,
    )
    if cfg.loss == "cached-mnrl":
        loss = CachedMultipleNegativesRankingLoss(st, mini_batch_size=cfg.mini_batch_size)
    else:
        loss = MultipleNegativesRankingLoss(st)
    extra = list(callbacks)
    if stepped and cfg.patience:
        from transformers import EarlyStoppingCallback

        extra.append(EarlyStoppingCallback(early_stopping_patience=cfg.patience))
    trainer = SentenceTransformerTrainer(
        model=st,
        args=args,
        train_dataset=Dataset.from_dict(rows.columns),
        loss=loss,
        evaluator=evaluator,
        callbacks=run.callbacks(*extra),
    )
    if quiet:  # logging_steps=1 (the NaN guard) would print a dict a step
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
    result = run.train(trainer)
    st.save(str(out))
    history = trainer.state.log_history
    return {
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "losses": [h["loss"] for h in history if "loss" in h],
        "valid": [
            {k: v for k, v in h.items() if k.startswith("eval_") or k in ("epoch", "step")}
            for h in history
            if any(k.startswith("eval_") for k in h)
        ],
        "out": str(out),
        "best_step": _step_of(trainer.state.best_model_checkpoint),
        "best_metric": trainer.state.best_metric,
    }


def _best_step_arguments(cfg: TextBiencoderConfig, evaluator: Any) -> dict[str, Any]:
    """Evaluate and save every ``eval_steps``; the best checkpoint by the evaluator's
    primary metric is loaded at the end (the Trainer keeps it past ``keep``)."""
    primary, name = evaluator.primary_metric, getattr(evaluator, "name", "")
    if name and not primary.startswith(f"{name}_"):  # prefixed once the evaluator has run
        primary = f"{name}_{primary}"
    metric = f"eval_{primary}"
    return {
        "eval_steps": cfg.eval_steps,
        "load_best_model_at_end": True,
        "metric_for_best_model": metric,
        "greater_is_better": True,
    }


def _step_of(checkpoint: str | None) -> int | None:
    """The step of a ``checkpoint-N`` path (None without one)."""
    if not checkpoint:
        return None
    return int(Path(checkpoint).name.rsplit("-", 1)[-1])
