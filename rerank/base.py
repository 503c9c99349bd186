"""The Reranker protocol, the registry of reranker kinds and the text formatter.

A reranker scores (query, candidate) pairs; ``rerank`` / ``rerank_batch`` return the
candidates rescored and sorted (new candidates; the input is left as it was). Device choice, batching and model loading
live in each implementation. Specs read ``KIND[:MODEL][,key=value...]``, e.g.
``cross-encoder:BAAI/bge-reranker-v2-m3,batch_size=32`` or ``pair-gbdt:model.txt``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from retrieval.registry import Registry
from retrieval.types import Candidate, ComponentSpec, Product, product_text

Pair = tuple[Product, Candidate]
# Modules whose import registers a kind; imported on first use so torch stays unloaded.
_MODULES = {
    "cross-encoder": "rerank.cross_encoder",
    "qwen-vl": "rerank.qwen_vl",
    "pair-gbdt": "rerank.pair_gbdt",
    "flag": "rerank.flag",
    "flag-llm": "rerank.flag",
    "flag-layerwise": "rerank.layerwise",
}


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, candidate) pairs; higher means more likely the same product.

    ``needs_features``: the reranker reads the per-vector similarities of each pair
    (``candidate.features["sim_<vector>"]``), which the pipeline adds before scoring."""

    spec: str
    needs_features: bool

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in order. Pairs may come from many queries."""
        ...


@dataclass(frozen=True)
class Formatter:
    """Turns a product into the text a model reads: its title, then chosen fields
    (``fields=brand+description`` in a spec), each as ``name: value``."""

    fields: tuple[str, ...] = ()
    max_chars: int = 1000

    @classmethod
    def from_option(cls, value: str | None) -> Formatter:
        return cls(tuple(f for f in (value or "").split("+") if f))

    def __call__(self, product: Product) -> str:
        return product_text(product, self.fields, sep=" | ", labels=True)[: self.max_chars]


RERANKERS: Registry[Reranker] = Registry("reranker", lazy=_MODULES)


def register_reranker(name: str) -> Callable[[Callable[..., Reranker]], Callable[..., Reranker]]:
    """Register a factory ``factory(model, **options) -> Reranker`` under an exact name."""
    return RERANKERS.register(name)


def reranker_kinds() -> list[str]:
    """Every known reranker kind."""
    return RERANKERS.kinds()


def build_reranker(spec: str | ComponentSpec) -> Reranker:
    """Build a reranker from ``KIND[:MODEL][,key=value...]``; unknown kinds list the known."""
    return RERANKERS.build(spec)


@dataclass
class RerankStats:
    """Counts a batch run reports (truncated titles, unreadable images, ...)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def rerank(reranker: Reranker, query: Product, candidates: Sequence[Candidate]) -> list[Candidate]:
    """One query's candidates rescored, best first."""
    return rerank_batch(reranker, [(query, candidates)])[0]


def rerank_batch(
    reranker: Reranker, items: Sequence[tuple[Product, Sequence[Candidate]]]
) -> list[list[Candidate]]:
    """The candidates of many queries rescored in one call (the reranker batches across
    queries), each list best first; an empty list stays empty. The input candidates are
    not changed: each one comes back as a copy carrying its stage-2 score."""
    pairs = [(q, c) for q, cands in items for c in cands]
    scores = reranker.score(pairs) if pairs else []
    if len(scores) != len(pairs):
        raise RuntimeError(f"{reranker.spec} returned {len(scores)} scores for {len(pairs)} pairs")
    it = iter(scores)
    out = []
    for _, cands in items:
        scored = [replace(c, features=dict(c.features), score=float(next(it))) for c in cands]
        out.append(sorted(scored, key=lambda c: (-(c.score or 0.0), c.stage1_rank)))
    return out
