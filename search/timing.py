"""Per-stage timing of ``Pipeline.run`` and the queries it could not search.

The pipeline runs stage 1 (encode + index search) and stage 2 (features + rerank) per
batch. ``Probe`` wraps, for the duration of a ``with`` block, three methods of the
pipeline's retriever *instance* (the classes are untouched): ``search`` (stage-1 time
per batch), ``index.search`` (the index's share of it; the rest is query encoding)
and ``requests`` (a None request is a query lacking the searched vector). The
pipeline's progress callback marks the end of each batch; the batch's time minus its
stage-1 time is its stage-2 time.

Latency is per batch divided by the batch size: each query of a batch gets that share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.retriever import Retriever


@dataclass
class Timing:
    """Per-query latency shares of both stages, and stage-1 time split in two."""

    stage1_ms: list[float] = field(default_factory=list)
    stage2_ms: list[float] = field(default_factory=list)
    encode_s: float = 0.0  # query encoding inside stage 1
    index_s: float = 0.0  # index search inside stage 1

    def summary(self, stage: str) -> dict[str, float]:
        """p50 / p95 latency (ms per query), mean, and queries per second of one stage."""
        ms = np.asarray(self.stage1_ms if stage == "stage1" else self.stage2_ms)
        if ms.size == 0:
            return {}
        total_s = float(ms.sum()) / 1000.0
        out = {
            f"{stage}/latency_p50_ms": float(np.percentile(ms, 50)),
            f"{stage}/latency_p95_ms": float(np.percentile(ms, 95)),
            f"{stage}/latency_mean_ms": float(ms.mean()),
            f"{stage}/qps": ms.size / total_s if total_s > 0 else float("inf"),
        }
        if stage == "stage1":
            out["stage1/encode_ms_per_query"] = 1000.0 * self.encode_s / ms.size
            out["stage1/search_ms_per_query"] = 1000.0 * self.index_s / ms.size
        return out


class Probe:
    """Times the stages of ``Pipeline.run`` and records queries lacking a vector."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.no_vector: list[str] = []
        self._timing = Timing()
        self._batch: list[Any] = []
        self._offset = 0
        self._stage1_batch = 0.0
        self._mark = 0.0

    def __enter__(self) -> Probe:
        r = self.retriever
        search, requests, index_search = r.search, r.requests, r.index.search

        def timed_search(queries: Any, **kwargs: Any) -> Any:
            self._batch, self._offset = list(queries), 0
            start = time.perf_counter()
            try:
                return search(queries, **kwargs)
            finally:
                self._stage1_batch += time.perf_counter() - start

        def probed_requests(encoded: Any, n: int, **kwargs: Any) -> Any:
            reqs = requests(encoded, n, **kwargs)
            batch = self._batch[self._offset : self._offset + n]
            self.no_vector += [p.id for p, req in zip(batch, reqs) if req is None]
            self._offset += n
            return reqs

        def timed_index_search(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return index_search(*args, **kwargs)
            finally:
                self._timing.index_s += time.perf_counter() - start

        r.search, r.requests, r.index.search = timed_search, probed_requests, timed_index_search
        self._saved = (search, requests, index_search)
        self._mark = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        for obj, name in ((self.retriever, "search"), (self.retriever, "requests")):
            obj.__dict__.pop(name, None)
        self.retriever.index.__dict__.pop("search", None)

    def ticker(self, tick: Callable[[int], None] | None) -> Callable[[int], None]:
        """The progress callback for ``Pipeline.run``: closes a batch, then ticks ``tick``."""

        def on_batch(n: int) -> None:
            now = time.perf_counter()
            total, s1 = now - self._mark, self._stage1_batch
            self._timing.stage1_ms += [1000.0 * s1 / n] * n
            self._timing.stage2_ms += [1000.0 * max(total - s1, 0.0) / n] * n
            self._stage1_batch, self._mark = 0.0, now
            if tick:
                tick(n)

        return on_batch

    def timing(self) -> Timing:
        """The timing gathered so far; encode time is stage-1 time minus index time."""
        t = self._timing
        t.encode_s = max(sum(t.stage1_ms) / 1000.0 - t.index_s, 0.0)
        return t
