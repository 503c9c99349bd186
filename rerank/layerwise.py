"""The ``flag-layerwise`` reranker: FlagEmbedding's LayerWiseFlagLLMReranker
(``BAAI/bge-reranker-v2-minicpm-layerwise``), scored by this project's own network.

FlagEmbedding 1.4.2, the newest release, runs this model through its copy of the
checkpoint's remote modeling code, which needs transformers 4; the project runs
transformers 5 and never executes code from a model folder. So the network is written in
``rerank.minicpm_layerwise`` on transformers' Llama modules and loads the checkpoint's
tensors by name; this module reproduces FlagEmbedding's inputs and scoring:

* the query reads ``"A: " + query`` (at most ``query_max_length`` tokens), the candidate
  ``"B: " + candidate`` (at most ``max_length``); the model reads ``<bos> query "\\n"
  candidate "\\n" prompt``, the candidate cut so that the pair fits ``max_length``
  plus the separators and prompt (FlagEmbedding's ``only_second`` truncation);
* the score is the score head of the cutoff layer at the last token (the "Yes" logit at
  that depth), through a sigmoid: a probability-like value in (0, 1) that the match
  decision thresholds.

Options: ``cutoff_layer`` (default the last layer, FlagEmbedding's default; a shallower
one, e.g. 28 of the released model's 40, runs and loads fewer layers), ``prompt`` (the
product-matching prompt), ``device``, ``precision`` (auto: bf16/fp16 on a GPU, fp32 on a
CPU), ``batch_size`` (32), ``max_length`` (256), ``query_max_length`` (3/4 of
``max_length``), ``fields`` (Product.fields keys appended to the title, ``+``-separated).
Needs the ``flag`` extra's torch, transformers and safetensors (not FlagEmbedding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rerank._torch import run_longest_first
from rerank.base import Pair, register_reranker
from rerank.flag import PRODUCT_PROMPT, FlagOptions
from retrieval.device import model_dtype, pick_device, require_extra
from retrieval.errors import SearchError
from retrieval.registry import int_option, optional

log = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-reranker-v2-minicpm-layerwise"
QUERY_PREFIX, CANDIDATE_PREFIX, SEP = "A: ", "B: ", "\n"


class LayerwiseReranker:
    """Scores (query, candidate) pairs at one layer of a layer-wise MiniCPM reranker."""

    needs_features = False

    def __init__(
        self,
        model: str,
        options: FlagOptions,
        *,
        cutoff_layer: int | None = None,
        prompt: str | None = None,
    ) -> None:
        require_extra(
            "flag", {"torch": "torch", "transformers": "transformers", "safetensors": "safetensors"}
        )
        from rerank.minicpm_layerwise import load_layerwise, read_config
        from retrieval.flag_compat import resolve_folder

        self.spec = f"flag-layerwise:{model}"
        folder = resolve_folder(model, "flag-layerwise")
        self.cutoff = cutoff_layer or int(read_config(folder)["num_hidden_layers"])
        self.device = pick_device(options.device)
        self.batch_size, self.format = options.batch_size, options.format()
        self.max_length = options.max_length
        self.query_max_length = options.query_length
        self.model = load_layerwise(  # checks the checkpoint before the tokenizer loads
            folder, self.cutoff, model_dtype(self.device, options.precision), self.device
        )
        self.tokenizer = _load_tokenizer(folder, self.spec)
        self.prompt = prompt or PRODUCT_PROMPT
        self.sep_ids = self._ids([SEP])[0]
        self.prompt_ids = self._ids([self.prompt])[0]
        log.info("%s: scoring at layer %d", self.spec, self.cutoff)

    def _ids(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        cut = {"max_length": limit, "truncation": True} if limit else {}
        return self.tokenizer(texts, add_special_tokens=False, **cut)["input_ids"]

    def encode(self, texts: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Token ids of each (query, candidate) text pair, FlagEmbedding's layout."""
        queries = self._ids([QUERY_PREFIX + q for q, _ in texts], self.query_max_length)
        candidates = self._ids([CANDIDATE_PREFIX + c for _, c in texts], self.max_length)
        bos = [] if self.tokenizer.bos_token_id is None else [self.tokenizer.bos_token_id]
        budget = self.max_length + len(self.sep_ids) + len(self.prompt_ids)
        out = []
        for query, candidate in zip(queries, candidates):
            first, second = bos + query, self.sep_ids + candidate
            second = second[: max(0, budget - len(first))]
            out.append(first + second + self.sep_ids + self.prompt_ids)
        return out

    def _score(self, texts: Sequence[tuple[str, str]]) -> list[float]:
        import torch

        ids = self.encode(texts)
        width = max(len(row) for row in ids)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
        with torch.inference_mode():
            logits = self.model(input_ids.to(self.device), mask.to(self.device))
        return torch.sigmoid(logits).cpu().tolist()

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One probability-like score in (0, 1) per (query, candidate) pair, in order."""
        if not pairs:
            return []
        texts = [(self.format(q), self.format(c.product)) for q, c in pairs]
        lengths = [len(q) + len(c) for q, c in texts]  # characters: no tokenizer pass
        return run_longest_first(texts, lengths, self.batch_size, self._score, name=self.spec)


def _load_tokenizer(folder: Path, spec: str) -> Any:
    """The checkpoint's tokenizer (its files only, never the folder's code). AutoTokenizer
    reads config.json too, where "minicpm" has no transformers class and ``rope_scaling``
    is deprecated: both expected here, so neither is printed."""
    import warnings

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    quiet = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SearchError(f"cannot load the tokenizer of {spec}: {first}") from exc
    finally:
        hf_logging.set_verbosity(quiet)


@register_reranker("flag-layerwise")
def build_layerwise(
    model: str | None = None,
    *,
    cutoff_layer: str | int | None = None,
    prompt: str | None = None,
    **options: str,
) -> LayerwiseReranker:
    """Build a ``flag-layerwise`` reranker (default model BAAI/bge-reranker-v2-minicpm-layerwise)."""
    return LayerwiseReranker(
        model or DEFAULT_MODEL,
        FlagOptions(**options),
        cutoff_layer=optional(int_option, "cutoff_layer", cutoff_layer, minimum=1),
        prompt=prompt,
    )
