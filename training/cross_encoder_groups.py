"""The cross-encoder's group recipe (FlagEmbedding's): ``GroupRows``, the training rows
as groups of (query, text) pairs, the positive first and ``group_size - 1`` negatives
drawn per epoch (negatives that read like the query or a positive left out), and
``GroupTrainer``, the Trainer whose loss reads each group's logits as one softmax (or a
binary cross-entropy per pair), whose optimiser gives freshly made weights their own
learning rate, and whose forward pass runs under bf16 autocast on a CPU that has it.
``training.cross_encoder`` trains with them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from rerank.base import text_form
from retrieval.errors import MissingExtraError, UsageError

try:  # the `train` extra; this module is only imported by training jobs
    from transformers import Trainer
except ImportError as exc:  # pragma: no cover
    raise MissingExtraError("train", exc.name or "transformers") from exc
from training.mining import unlike

log = logging.getLogger(__name__)


class GroupRows:
    """Torch-style dataset: item i is the (query, text) pairs of one group, positive first.

    Negatives are drawn from a generator seeded by (seed, epoch, i): a resumed run that
    replays an epoch draws the same groups. A negative that reads, in the configured text
    form, like the query or a positive is left out and counted (``identical``;
    ``training.mining.unlike``): 13% of the mined negatives on wdc-products, 2 of 5,445
    on Abt-Buy."""

    def __init__(
        self, rows: Sequence[dict[str, Any]], group_size: int, seed: int = 0, form: str = "raw"
    ) -> None:
        self.rows, self.identical = [], 0
        for r in rows:
            if not (r.get("pos") and r.get("neg")):
                continue
            query = text_form(r["query"], form)
            pos = [text_form(t, form) for t in r["pos"]]
            neg = [text_form(t, form) for t in r["neg"]]
            kept = [neg[i] for i in unlike(neg, query, *pos)]
            self.identical += len(neg) - len(kept)
            if kept:
                self.rows.append({"query": query, "pos": pos, "neg": kept})
        if self.identical:
            log.warning(
                "%d negatives that read like their query or a positive are left out "
                "(a text model cannot tell them apart)",
                self.identical,
            )
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
    """A Trainer whose loss reads each ``group_size`` logits as one softmax group, whose
    optimiser gives the freshly made weights (``fresh``) their own learning rate, and
    whose forward pass runs under bf16 autocast on a CPU with native bf16 (``cpu_bf16``)."""

    def __init__(
        self,
        *args: Any,
        fresh: frozenset[str] = frozenset(),
        head_lr: float = 0.0,
        cpu_bf16: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fresh, self.head_lr, self.cpu_bf16 = fresh, head_lr, cpu_bf16

    def create_optimizer(self, model=None):
        import torch

        if self.optimizer is not None or not self.fresh:
            return super().create_optimizer(model)
        groups: dict[tuple[bool, bool], list[Any]] = {}
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                key = (name in self.fresh, param.ndim >= 2)
                groups.setdefault(key, []).append(param)
        wd = self.args.weight_decay
        self.optimizer = torch.optim.AdamW(
            [
                {
                    "params": params,
                    "lr": self.head_lr if head else self.args.learning_rate,
                    "weight_decay": wd if matrix else 0.0,
                }
                for (head, matrix), params in groups.items()
            ],
            lr=self.args.learning_rate,
        )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        import torch

        with torch.autocast("cpu", torch.bfloat16, enabled=self.cpu_bf16):
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
