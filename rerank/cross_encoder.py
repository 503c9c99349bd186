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
from typing import Any

from rerank._torch import run_longest_first
from rerank.base import (
    TEXT_FORMS,
    Formatter,
    Pair,
    RerankStats,
    lean_on_stage1_rank,
    register_reranker,
    sigmoid,
    trained_reading,
)
from retrieval.device import model_dtype, pick_device
from retrieval.errors import MissingExtraError, SearchError, UsageError
from retrieval.registry import choice_option, float_option, int_option, optional

log = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-reranker-v2-m3"


class CrossEncoderReranker:
    """Scores pairs with a sentence-transformers CrossEncoder, batched by length."""

    needs_features = False  # reads titles (and chosen fields), not stage-1 similarities

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int = 32,
        max_length: int = 256,
        fields: str | None = None,
        activation: str = "sigmoid",
        text: str | None = None,
        stage1_weight: float | None = None,
    ) -> None:
        try:
            import torch
            from sentence_transformers import CrossEncoder
        except ImportError as exc:
            raise MissingExtraError("text", exc.name or "sentence-transformers") from exc
        self.spec = f"cross-encoder:{model}"
        self.device = pick_device(device)
        self.dtype = model_dtype(self.device, precision)
        self.batch_size = batch_size
        self.max_length = max_length
        trained = trained_reading(model)
        form = trained.form if text is None else choice_option("text", text, TEXT_FORMS)
        self.format = Formatter.from_option(
            "+".join(trained.fields) if fields is None else fields, form
        )
        self.probabilities = (
            choice_option("activation", activation, ("sigmoid", "none")) == "sigmoid"
        )
        self.stage1_weight = trained.stage1_weight if stage1_weight is None else stage1_weight
        self.stats = RerankStats()
        try:
            self.model = CrossEncoder(model, device=self.device, max_length=max_length)
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

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per (query, candidate) pair, in input order: the model's logit plus
        ``stage1_weight`` times the candidate's ``stage1_prior``, through the activation."""
        if not pairs:
            return []
        texts = [(self.format(q), self.format(c.product)) for q, c in pairs]
        lengths = self._lengths(texts)
        truncated = sum(n > self.max_length for n in lengths)
        if truncated:
            self.stats.add("truncated", truncated)
            log.debug("%s: %d of %d pairs truncated", self.spec, truncated, len(pairs))
        logits = run_longest_first(texts, lengths, self.batch_size, self._predict, name=self.spec)
        logits = lean_on_stage1_rank(logits, pairs, self.stage1_weight)
        return [sigmoid(z) for z in logits] if self.probabilities else logits


@register_reranker("cross-encoder")
def cross_encoder(
    model: str | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: str | int = 32,
    max_length: str | int = 256,
    fields: str | None = None,
    activation: str = "sigmoid",
    text: str | None = None,
    stage1_weight: str | float | None = None,
) -> CrossEncoderReranker:
    """Build a cross-encoder reranker (default model ``BAAI/bge-reranker-v2-m3``)."""
    return CrossEncoderReranker(
        model or DEFAULT_MODEL,
        device=device,
        precision=precision,
        batch_size=int_option("batch_size", batch_size, minimum=1),
        max_length=int_option("max_length", max_length, minimum=8),
        fields=fields,
        activation=activation,
        text=text,
        stage1_weight=optional(float_option, "stage1_weight", stage1_weight),
    )
