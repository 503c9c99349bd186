"""The ``cross-encoder`` reranker: a sentence-transformers CrossEncoder reads the query
title and the candidate title together and gives one relevance logit.

Model: any hub name or local path of a single-logit cross-encoder.

* ``BAAI/bge-reranker-v2-m3`` (default): multilingual XLM-RoBERTa-large (568M parameters);
  Shopee titles mix Indonesian and English. Wants a GPU.
* ``cross-encoder/ms-marco-MiniLM-L6-v2``: small English MiniLM (23M), fine on a CPU.

Options (``cross-encoder:MODEL,key=value,...``):

* ``device``: ``auto`` (cuda, then mps, then cpu) or a torch device name.
* ``precision``: ``auto`` (bf16 on a GPU, fp32 on a CPU), ``bf16``, ``fp16`` or ``fp32``.
* ``batch_size`` (32): pairs per forward pass; halved and retried on GPU out-of-memory.
* ``max_length`` (256): tokens per pair; longer pairs are truncated and counted in
  ``stats.counts["truncated"]``.
* ``fields``: product fields appended to the title, ``+``-separated (``brand+description``);
  default: the fields a folder we trained records (``search_reranker.json``), else none.
* ``activation``: ``sigmoid`` (default; scores in [0, 1]) or ``none`` (raw logits).
* ``stage1_weight``: how much the candidate's stage-1 rank adds to the logit
  (``weight * rerank.base.stage1_prior(rank)``, i.e. ``-weight * log2(1 + rank)``).
  Default: the weight a folder we trained records (chosen on valid: where the model alone
  ranks worse than stage 1, leaning on stage 1 wins it back), else 0 (the model alone).
* ``text``: ``raw`` or ``codes`` (``rerank.base.TEXT_FORMS``: separators inside product
  codes dropped). Default: the form a folder we trained records, else ``raw``; a model
  reads text as it was trained to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rerank._torch import LogitReranker, run_longest_first
from rerank.base import TEXT_FORMS, Pair, register_reranker
from retrieval.errors import MissingExtraError, SearchError, UsageError
from retrieval.registry import choice_option, int_option

log = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"


class CrossEncoderReranker(LogitReranker):
    """Scores pairs with a sentence-transformers CrossEncoder, batched by length; ``run``
    holds ``LogitReranker``'s options (device, precision, batch_size, fields,
    stage1_weight)."""

    kind = "cross-encoder"

    def __init__(
        self,
        model: str | None = None,
        *,
        max_length: str | int = 256,
        activation: str = "sigmoid",
        text: str | None = None,
        **run: Any,
    ) -> None:
        try:
            import torch
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise MissingExtraError("text", exc.name or "sentence-transformers") from exc
        model = model or DEFAULT_MODEL
        super().__init__(model, **run)
        self.max_length = int_option("max_length", max_length, minimum=8)
        if text is not None:
            self.format = replace(self.format, form=choice_option("text", text, TEXT_FORMS))
        self.probabilities = (
            choice_option("activation", activation, ("sigmoid", "none")) == "sigmoid"
        )
        try:
            self.model = CrossEncoder(model, device=self.device, max_length=self.max_length)
        except OSError as exc:
            raise SearchError(f"cannot load cross-encoder {model!r}: {exc}") from exc
        if self.model.num_labels != 1:
            raise UsageError(
                f"cross-encoder {model!r} has {self.model.num_labels} labels; expected 1 logit"
            )
        if self.dtype != torch.float32:
            self.model.to(dtype=self.dtype)
        self.model.eval()
        self.tokenizer: Any = self.model.tokenizer

    def _lengths(self, texts: Sequence[tuple[str, str]]) -> list[int]:
        """Token counts of each pair before truncation (special tokens included)."""
        encoded = self.tokenizer(
            [a for a, _ in texts], [b for _, b in texts], truncation=False, verbose=False
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def _predict(self, texts: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        with torch.inference_mode():
            scores = self.model.predict(
                list(texts),
                batch_size=len(texts),
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [float(s) for s in scores.reshape(-1)]

    def margins(self, pairs: Sequence[Pair]) -> list[float]:
        """The model's logit of each (query, candidate) pair, longest first in batches;
        pairs past ``max_length`` tokens are cut and counted (``stats``)."""
        texts = [(self.format(q), self.format(c.product)) for q, c in pairs]
        lengths = self._lengths(texts)
        truncated = sum(n > self.max_length for n in lengths)
        if truncated:
            self.stats.add("truncated", truncated)
            log.debug("%s: %d of %d pairs truncated", self.spec, truncated, len(pairs))
        return run_longest_first(texts, lengths, self.batch_size, self._predict, name=self.spec)


# the class is its own factory: a spec's options are its keywords (default model above)
register_reranker(CrossEncoderReranker.kind)(CrossEncoderReranker)
