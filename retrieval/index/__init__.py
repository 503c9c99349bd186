"""Vector index back-ends: ``edge`` (embedded Qdrant Edge, default) and ``server``.

```
base.py           VectorIndex protocol, IndexConfig, SearchRequest, PointBatch, point_id
qdrant.py         QdrantIndex: what both back-ends share over either client's models
rank_fusion.py    RRF / DBSF fused on our side, hybrid requests split and joined
space.py          disk room for the embedded index's mapped files
edge.py           EdgeIndex: the embedded engine, one shard per directory
server.py         ServerIndex: a Qdrant server or cluster: the connection, collections,
                  shards and replicas, the bulk load's HNSW switch
server_points.py  ServerPoints: the server's point I/O: parallel upload streams, reads,
                  deletes, requests in qdrant-client's models
```
"""

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
