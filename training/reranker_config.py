"""The cross-encoder trainer's settings and defaults: the one place they live.

Light on purpose (no torch, no transformers): ``search``'s options classes inherit
``CrossEncoderConfig``, so the CLI flags and the ``[train.cross-encoder]`` config
section override these defaults and never restate them. Fields left None are filled by
the recipe of the starting point (``RECIPES``):

* ``fresh-head``: an encoder without a one-logit head (all-MiniLM-L6-v2, bge-base). The
  head starts random: it learns at ``head_lr`` (20x the body's), the body at ``lr``,
  for 3 epochs, each checked on valid.
* ``reranker``: a finished reranker (bge-reranker-v2-m3 style): FlagEmbedding's low
  learning rate for everything and 2 epochs, so what it knows is adjusted, not
  overwritten.

Both use the group softmax (1 positive + ``group_size - 1`` negatives) that FlagEmbedding
trains its rerankers with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from retrieval.errors import UsageError

#: Defaults that depend on the starting point; a field left None in the config takes these.
RECIPES: dict[str, dict[str, Any]] = {
    "fresh-head": {"epochs": 3.0, "lr": 5e-5, "head_lr": 1e-3, "loss": "ce"},
    "reranker": {"epochs": 2.0, "lr": 2e-5, "head_lr": 2e-5, "loss": "ce"},
}


@dataclass
class ValidChoice:
    """How a reranker trainer chooses its epoch on valid (cross-encoder and qwen-vl)."""

    # Epochs without a better valid hit@1 before stopping; 0: never. 1: on wdc-products
    # the cross-encoder peaked at epoch 1 (valid hit@1 0.702, then 0.622, 0.568), so the
    # third of its 61 minutes was spent on an epoch that could not be kept; on Abt-Buy
    # each draw gained up to its last epoch or stopped there anyway.
    patience: int = 1
    valid_queries: int = 500  # valid queries ranked each epoch (a seeded sample); 0: all
    valid_k: int = 20  # stage-1 candidates of each valid query ranked; 0: all


@dataclass
class CrossEncoderConfig(ValidChoice):
    """What a cross-encoder training run is asked for; None: the starting point's recipe."""

    epochs: float | None = None
    batch_size: int = 4  # groups per step (pairs = batch_size * group_size)
    group_size: int = 8
    lr: float | None = None
    head_lr: float | None = None  # freshly made weights (the new head)
    warmup: float = 0.1
    save_steps: int = 500
    grad_accum: int = 1
    max_length: int = 128
    loss: str | None = None
    seed: int = 0
    precision: str = "auto"
    max_steps: int = -1
    # How titles are read (rerank.base.TEXT_FORMS), recorded next to the weights so the
    # reranker reads them alike: ``codes`` drops the separators inside product codes
    # (``010-00715-20`` = ``0100071520``); on Abt-Buy, valid hit@1 0.878 -> 0.907.
    text: str = "codes"
    # Product fields read after the title, "+"-separated ("description", "brand+price"),
    # as the reranker's ``fields=``; recorded next to the weights. "": the title only.
    fields: str = ""
    # The weight of stage 1's rank added to the model's logit at query time
    # (``rerank.base.stage1_prior``), recorded next to the weights. None: chosen on valid
    # after the epoch (``training.ranking.STAGE1_WEIGHTS``, 0 included); a number: fixed.
    stage1_weight: float | None = None

    def resolved(self, recipe: str) -> CrossEncoderConfig:
        """This config with its unset fields taken from ``RECIPES[recipe]``."""
        unset = {k: v for k, v in RECIPES[recipe].items() if getattr(self, k) is None}
        return replace(self, **unset)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> CrossEncoderConfig:
        """A config from CLI/config-file options; unknown names are a UsageError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"unknown cross-encoder option(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in options.items() if v is not None})
