"""Vector index back-ends: ``edge`` (embedded Qdrant Edge, default) and ``server``."""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import unknown_name
from retrieval.index.base import (
    HYBRID,
    CollectionInfo,
    IndexConfig,
    PointBatch,
    SearchRequest,
    VectorIndex,
    point_id,
)

BACKENDS = ("edge", "server")

__all__ = [
    "BACKENDS",
    "HYBRID",
    "CollectionInfo",
    "IndexConfig",
    "PointBatch",
    "SearchRequest",
    "VectorIndex",
    "open_index",
    "point_id",
]


def open_index(
    backend: str = "edge",
    *,
    data_dir: str | Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    config: IndexConfig | None = None,
) -> VectorIndex:
    """Open a back-end by exact name: ``edge`` under ``data_dir``, ``server`` at ``url``."""
    if backend == "edge":
        from retrieval.index.edge import EdgeIndex

        if data_dir is None:
            raise ValueError("the edge back-end needs a data dir")
        return EdgeIndex(data_dir, config)
    if backend == "server":
        from retrieval.index.server import ServerIndex

        return ServerIndex(url, api_key, config)
    raise unknown_name("index back-end", backend, BACKENDS)
