"""FlagEmbedding's rerankers, by exact kind name:

* ``flag``: ``FlagReranker``, a cross-encoder checkpoint (default
  ``BAAI/bge-reranker-v2-m3``);
* ``flag-llm``: ``FlagLLMReranker``, a decoder LLM scoring the "Yes" token after a
  prompt (default ``BAAI/bge-reranker-v2-gemma``); the prompt asks whether two
  listings are the same product;
(``flag-layerwise``, FlagEmbedding's LayerWiseFlagLLMReranker, is ``rerank.layerwise``: its
model code in FlagEmbedding 1.4.2 needs transformers 4, so the project scores it itself.)

Scores go through a sigmoid (FlagEmbedding's ``normalize=True``), so they lie in
[0, 1] and the match decision can threshold them. Options: ``device`` (auto),
``precision`` (auto: fp16/bf16 on a GPU, fp32 on a CPU), ``batch_size`` (32),
``max_length`` (tokens of the candidate side, 256), ``query_max_length`` (tokens of the
query side, default 3/4 of ``max_length``), ``fields`` (Product.fields keys appended
to the title, ``+``-separated); ``prompt`` for the LLM kinds. FlagEmbedding is imported
inside the factory; missing, it is a one-line error naming the ``flag`` extra.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerank._torch import run_batches
from rerank.base import Formatter, Pair, register_reranker
from retrieval.device import model_dtype, pick_device
from retrieval.errors import SearchError
from retrieval.registry import int_option, optional

log = logging.getLogger(__name__)

PRODUCT_PROMPT = (
    "Given two product listings A and B, predict whether they are the same product "
    "by providing a prediction of either 'Yes' or 'No'."
)
DEFAULTS = {
    "flag": "BAAI/bge-reranker-v2-m3",
    "flag-llm": "BAAI/bge-reranker-v2-gemma",
}


@dataclass(frozen=True)
class FlagOptions:
    """The options every FlagEmbedding-style reranker takes (spec options arrive as
    strings; the numbers are parsed and checked here). ``query_max_length`` None: 3/4
    of ``max_length``."""

    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 32
    max_length: int = 256
    query_max_length: int | None = None
    fields: str | None = None

    def __post_init__(self) -> None:
        for name, least in (("batch_size", 1), ("max_length", 8)):
            object.__setattr__(self, name, int_option(name, getattr(self, name), minimum=least))
        query = optional(int_option, "query_max_length", self.query_max_length, minimum=4)
        object.__setattr__(self, "query_max_length", query)

    @property
    def query_length(self) -> int:
        """Tokens of the query side."""
        return self.query_max_length or self.max_length * 3 // 4

    def format(self) -> Formatter:
        """How a product reads: its title, then the chosen ``fields``."""
        return Formatter.from_option(self.fields)


class FlagRerankerAdapter:
    """Scores (query, candidate) title pairs with a FlagEmbedding reranker, sigmoid-normalised."""

    def __init__(
        self, kind: str, model: str, options: FlagOptions, prompt: str | None = None
    ) -> None:
        import torch

        from retrieval.flag_compat import import_flag

        flag = import_flag()
        self.spec = f"{kind}:{model}"
        self.device = pick_device(options.device)
        dtype = model_dtype(self.device, options.precision)
        self.batch_size, self.format = options.batch_size, options.format()
        self.call_options: dict[str, Any] = {
            "max_length": options.max_length,
            "query_max_length": options.query_length,
            "normalize": True,
        }
        common: dict[str, Any] = {
            "use_fp16": dtype == torch.float16,
            "devices": [self.device],
            "batch_size": options.batch_size,
            "max_length": options.max_length,
            "normalize": True,
        }
        if kind != "flag":
            common["use_bf16"] = dtype == torch.bfloat16
            self.call_options["prompt"] = prompt or PRODUCT_PROMPT
        classes = {
            "flag": flag.FlagReranker,
            "flag-llm": flag.FlagLLMReranker,
        }
        try:
            self.model = classes[kind](model, **common)
        except Exception as exc:  # hub misses offline, broken folders: one clear line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SearchError(f"cannot load {kind} reranker {model!r}: {first}") from exc

    def _score(self, texts: Sequence[tuple[str, str]]) -> list[float]:
        import numpy as np
        import torch

        with torch.inference_mode():
            scores = self.model.compute_score(
                # one chunk (run_batches sized it); above len, FlagEmbedding shows no bars
                [list(t) for t in texts],
                batch_size=len(texts) + 1,
                **self.call_options,
            )
        flat = np.asarray(scores, dtype=np.float64).reshape(-1)
        return [float(s) for s in flat]

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One probability-like score in [0, 1] per (query, candidate) pair, in order."""
        if not pairs:
            return []
        texts = [(self.format(q), self.format(c.product)) for q, c in pairs]
        scores, _ = run_batches(texts, self.batch_size, self._score, name=self.spec)
        return scores


def _factory(kind: str):
    def build(model: str | None = None, *, prompt: str | None = None, **options: str) -> Any:
        if prompt is not None and kind == "flag":
            raise TypeError("unexpected option prompt (a cross-encoder reads no prompt)")
        # an unknown option is a TypeError, which the registry reports as a bad option
        return FlagRerankerAdapter(kind, model or DEFAULTS[kind], FlagOptions(**options), prompt)

    build.__doc__ = f"Build a ``{kind}`` reranker (default model {DEFAULTS[kind]})."
    return build


for _kind in DEFAULTS:
    register_reranker(_kind)(_factory(_kind))
