"""Stage 1 -> stage 2.

Retrieve K candidates per query, optionally rerank them, keep the top N, and optionally
blend the stage-1 score into the final score. Which candidates are matches is decided
by the jobs (``search.match``), not here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rerank.base import Reranker, rerank_batch
from retrieval.encoders.base import SparseVec, Vector
from retrieval.index.base import point_id
from retrieval.retriever import Retriever
from retrieval.types import Candidate, Hit, Product

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """How the two stages are joined."""

    k: int = 100  # stage-1 candidates per query
    n: int = 10  # candidates kept after stage 2
    using: str = "hybrid"  # stage-1 vector or hybrid
    hybrid: list[str] = field(default_factory=list)
    fusion: str = "rrf"
    blend: float = 0.0  # weight of the min-max normalised stage-1 score in the final score
    batch_size: int = 64


@dataclass
class PipelineResult:
    """Both stages' candidates of one query."""

    query: Product
    stage1: list[Candidate]
    stage2: list[Candidate] | None = None

    @property
    def final(self) -> list[Candidate]:
        return self.stage2 if self.stage2 is not None else self.stage1


def hits_to_candidates(hits: Sequence[Hit]) -> list[Candidate]:
    """Stage-1 hits as candidates carrying their rank and score."""
    return [
        Candidate(
            Product.from_payload(h.payload),
            h.score,
            rank,
            {"stage1_score": h.score, "stage1_rank": rank},
        )
        for rank, h in enumerate(hits, 1)
    ]


def similarity(a: Vector, b: Vector) -> float:
    """Cosine of two dense vectors, or the dot product of two sparse ones (normalised)."""
    if isinstance(a, SparseVec) and isinstance(b, SparseVec):
        common, ia, ib = np.intersect1d(
            a.indices, b.indices, assume_unique=True, return_indices=True
        )
        if not len(common):
            return 0.0
        dot = float(np.dot(a.values[ia], b.values[ib]))
        return dot / (float(np.linalg.norm(a.values) * np.linalg.norm(b.values)) or 1.0)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b)) / (na * nb) if na and nb else 0.0


class Pipeline:
    """A retriever, an optional reranker, and the rules joining them."""

    def __init__(
        self,
        retriever: Retriever,
        reranker: Reranker | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.config = config or PipelineConfig()

    def add_features(self, queries: Sequence[Product], cands: Sequence[list[Candidate]]) -> None:
        """Per-vector similarities of every (query, candidate) pair, from the stored vectors."""
        enc = self.retriever.encode(list(queries))
        ids = sorted(
            {point_id(c.product.fields.get("dataset", ""), c.id) for row in cands for c in row}
        )
        stored = self.retriever.index.fetch(self.retriever.collection, ids)
        names = self.retriever.vector_names()
        for qi, row in enumerate(cands):
            for c in row:
                vecs = stored.get(point_id(c.product.fields.get("dataset", ""), c.id), {})
                for name in names:
                    qv, cv = enc.vectors[name][qi], vecs.get(name)
                    c.features[f"sim_{name}"] = (
                        similarity(qv, cv) if qv is not None and cv is not None else math.nan
                    )

    def run(
        self,
        queries: Sequence[Product],
        *,
        filters: Sequence[dict[str, str] | None] | None = None,
        exclude_self: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> list[PipelineResult]:
        """Both stages for every query, in batches."""
        cfg = self.config
        results: list[PipelineResult] = []
        for start in range(0, len(queries), cfg.batch_size):
            batch = list(queries[start : start + cfg.batch_size])
            flts = filters[start : start + cfg.batch_size] if filters is not None else None
            hits = self.retriever.search(
                batch,
                using=cfg.using,
                k=cfg.k,
                hybrid=cfg.hybrid,
                fusion=cfg.fusion,
                filters=flts,
                exclude_self=exclude_self,
                batch_size=len(batch),
            )
            stage1 = [hits_to_candidates(row) for row in hits]
            for row in stage1:
                for c in row:
                    c.score = c.stage1_score
            stage2 = None
            if self.reranker is not None:
                fresh = [
                    [
                        Candidate(c.product, c.stage1_score, c.stage1_rank, dict(c.features))
                        for c in row
                    ]
                    for row in stage1
                ]
                if getattr(self.reranker, "needs_features", False):
                    self.add_features(batch, fresh)
                stage2 = rerank_batch(self.reranker, list(zip(batch, fresh)))
                if cfg.blend:
                    stage2 = [self._blend(row) for row in stage2]
                stage2 = [row[: cfg.n] for row in stage2]
            for qi, q in enumerate(batch):
                results.append(
                    PipelineResult(q, stage1[qi], stage2[qi] if stage2 is not None else None)
                )
            if progress:
                progress(len(batch))
        return results

    def _blend(self, row: list[Candidate]) -> list[Candidate]:
        if not row:
            return row
        s1 = np.array([c.stage1_score for c in row], dtype=np.float64)
        span = float(s1.max() - s1.min()) or 1.0
        w = self.config.blend
        for c, s in zip(row, (s1 - s1.min()) / span):
            c.score = (1 - w) * float(c.score or 0.0) + w * float(s)
        return sorted(row, key=lambda c: (-(c.score or 0.0), c.stage1_rank))
