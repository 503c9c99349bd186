"""Per-stage timing of ``Pipeline.run``, measured by the pipeline itself.

The pipeline runs stage 1 (query encoding + index search) and stage 2 (features +
rerank + blend) per batch and records each batch here. Latency is per batch divided
by the batch size: each query of a batch gets that share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Timing:
    """Per-query latency shares of both stages, and stage-1 time split in two."""

    stage1_ms: list[float] = field(default_factory=list)
    stage2_ms: list[float] = field(default_factory=list)
    encode_s: float = 0.0  # query encoding inside stage 1
    index_s: float = 0.0  # index search inside stage 1

    def add_batch(
        self, n: int, stage1_s: float, stage2_s: float, encode_s: float, index_s: float
    ) -> None:
        """Record one batch of ``n`` queries."""
        if n:
            self.stage1_ms += [1000.0 * stage1_s / n] * n
            self.stage2_ms += [1000.0 * stage2_s / n] * n
        self.encode_s += encode_s
        self.index_s += index_s

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
