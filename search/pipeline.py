"""Stage 1 -> stage 2.

Retrieve K candidates per query, optionally rerank them, keep the top N, and optionally
blend the stage-1 score into the final score. Which candidates are matches is decided
by the jobs (``search.match``), not here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rerank.base import Reranker, rerank_batch
from retrieval.data.base import Dataset
from retrieval.encoders.base import SparseVec, Vector
from retrieval.index.base import point_id
from retrieval.query_plan import default_vector
from retrieval.retriever import Retriever
from retrieval.types import Candidate, Hit, Product
from search.config import Stage1Config, Stage2Config
from search.timing import Timing

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """Both stages' candidates of one query (``hits``: stage 1 as the index answered)."""

    query: Product
    hits: list[Hit]
    stage1: list[Candidate]
    stage2: list[Candidate] | None = None
    # run(lists=True): each searched vector's own ranked answer (``BatchHits.lists``)
    lists: dict[str, list[Hit]] | None = None

    @property
    def final(self) -> list[Candidate]:
        return self.stage2 if self.stage2 is not None else self.stage1


@dataclass
class PipelineRun:
    """Every query's result, the time each stage took, and the queries stage 1 could
    not search (``no_vector``: no searched vector; ``failures``: why a modality is missing)."""

    results: list[PipelineResult] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    no_vector: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)


def hits_to_candidates(hits: Sequence[Hit]) -> list[Candidate]:
    """Stage-1 hits as candidates carrying their rank and score (the score so far)."""
    return [
        Candidate(
            Product.from_payload(h.payload),
            h.score,
            rank,
            {"stage1_score": h.score, "stage1_rank": rank},
            score=h.score,
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
    """A retriever, an optional reranker, and the stage settings joining them (the
    ``[stage1]`` and ``[stage2]`` sections of the config; ``stage1.batch_size`` queries
    per batch)."""

    def __init__(
        self,
        retriever: Retriever,
        reranker: Reranker | None = None,
        stage1: Stage1Config | None = None,
        stage2: Stage2Config | None = None,
    ) -> None:
        self.retriever = retriever
        self.reranker = reranker
        self.stage1 = stage1 or Stage1Config()
        self.stage2 = stage2 or Stage2Config()
        self.vector = default_vector(retriever.vector_names(), self.stage1.vector)
        self.n = min(self.stage2.n, self.stage1.k)  # candidates kept after stage 2

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
        lists: bool = False,
    ) -> PipelineRun:
        """Both stages for every query, in batches, timed per batch (``lists``: each
        result keeps its answer per searched vector too)."""
        out, size, s1 = PipelineRun(), self.stage1.batch_size, self.stage1
        for start in range(0, len(queries), size):
            batch = list(queries[start : start + size])
            began = time.perf_counter()
            found = self.retriever.search_batch(
                batch,
                using=self.vector,
                k=s1.k,
                hybrid=s1.hybrid,
                fusion=s1.fusion,
                filters=filters[start : start + size] if filters is not None else None,
                exclude_self=exclude_self,
                lists=lists,
            )
            searched = time.perf_counter()
            stage1 = [hits_to_candidates(row) for row in found.hits]
            stage2 = self._stage2(batch, stage1)
            done = time.perf_counter()
            out.timing.add_batch(
                len(batch), searched - began, done - searched, found.encode_s, found.index_s
            )
            out.no_vector += found.missing
            out.failures.update(found.failures)
            for qi, q in enumerate(batch):
                row2 = stage2[qi] if stage2 is not None else None
                own = found.lists[qi] if lists else None
                out.results.append(PipelineResult(q, found.hits[qi], stage1[qi], row2, own))
            if progress:
                progress(len(batch))
        return out

    def run_split(
        self,
        dataset: Dataset,
        split: str | None,
        queries: Sequence[Product],
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
        label: str | None = None,
        lists: bool = False,
    ) -> PipelineRun:
        """``run`` over a split's query listings as the dataset searches them: within the
        split (its filter) and, on self-matching sets, without the query itself."""
        flt = dataset.search_filter(split)
        tick = progress(label or f"{split} queries", len(queries)) if progress else None
        return self.run(
            queries,
            filters=[flt] * len(queries) if flt else None,
            exclude_self=dataset.self_match,
            progress=tick,
            lists=lists,
        )

    def _stage2(
        self, batch: list[Product], stage1: list[list[Candidate]]
    ) -> list[list[Candidate]] | None:
        """The reranked top n of each query (None without a reranker)."""
        if self.reranker is None:
            return None
        if self.reranker.needs_features:
            self.add_features(batch, stage1)
        stage2 = rerank_batch(self.reranker, list(zip(batch, stage1)))
        if self.stage2.blend:
            stage2 = [self._blend(row) for row in stage2]
        return [row[: self.n] for row in stage2]

    def _blend(self, row: list[Candidate]) -> list[Candidate]:
        if not row:
            return row
        s1 = np.array([c.stage1_score for c in row], dtype=np.float64)
        span = float(s1.max() - s1.min()) or 1.0
        w = self.stage2.blend
        for c, s in zip(row, (s1 - s1.min()) / span):
            c.score = (1 - w) * float(c.score or 0.0) + w * float(s)
        return sorted(row, key=lambda c: (-(c.score or 0.0), c.stage1_rank))
