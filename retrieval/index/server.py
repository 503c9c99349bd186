"""Server back-end: a Qdrant server (docker compose, the binary, or a cluster) through
``qdrant-client``.

The collection's vectors and encoders live in the collection's own metadata. A load
(``prepare_load`` .. ``optimize``) follows Qdrant's bulk-upload advice: the HNSW build is
off while points stream in (``indexing_threshold`` 0), batches go out on several parallel
streams without waiting for each to be applied, and at the end the threshold is restored,
the collection waited on until it is green and its point count checked. On a cluster,
shards, replicas and write consistency are set when the collection is made; reads take
``read_consistency``. The client speaks to servers 1.16 to 1.18 (tested with 1.16.3);
another version is refused in one line. (qdrant-client's ``":memory:"`` local mode is not
the engine and is not offered: the tests start a real server.) The points in and out
(parallel upload streams, reads, deletes, requests) are ``server_points.ServerPoints``.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from retrieval.encoders.base import VectorSpec
from retrieval.errors import SearchError, UsageError
from retrieval.index.base import KEYWORD_FIELDS, IndexConfig, read_consistency
from retrieval.index.qdrant import hnsw_config, vector_params
from retrieval.index.server_points import ServerPoints
from retrieval.types import ProgressFactory

log = logging.getLogger(__name__)
UNREACHABLE_HINT = "start one with `docker compose up -d qdrant` or pass --qdrant-url"
SERVER_VERSIONS = ((1, 16), (1, 18))  # what qdrant-client 1.16/1.17 speaks to; tested: 1.16.3
GREEN_TIMEOUT = 3600.0  # seconds a load waits for the HNSW build before it gives up


class ServerIndex(ServerPoints):
    """VectorIndex over a Qdrant server (or a cluster's peer) at ``url``: the connection
    and its one-line errors, collections, shards and replicas, the load's HNSW switch; the
    point I/O is ``ServerPoints``'."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        config: IndexConfig | None = None,
        timeout: int = 60,
    ) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.url = url or os.environ.get("QDRANT_URL") or "http://localhost:6333"
        self.where = f"at {self.url}"
        api_key = api_key or os.environ.get("QDRANT_API_KEY") or None
        self.config = config or IndexConfig()
        self._consistency = read_consistency(self.config.read_consistency)
        # the version check is ours (_check_version): one line instead of a warning
        self.client = QdrantClient(
            url=self.url, api_key=api_key, timeout=timeout, check_compatibility=False
        )
        self._meta: dict[str, dict[str, Any]] = {}
        self._checked = False
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, turning connection failures into one clear line."""
        if not self._checked:
            self._checked = True
            self._check_version()
        return self._raw_call(fn, *args, **kwargs)

    def _check_version(self) -> None:
        """Refuse a server this client does not speak to, in one line."""
        version = str(self._raw_call(self.client.info).version)
        try:
            major_minor = tuple(int(x) for x in version.split(".")[:2])
        except ValueError:
            major_minor = (0, 0)
        low, high = SERVER_VERSIONS
        if not low <= major_minor <= high:
            raise SearchError(
                f"Qdrant at {self.url} is version {version}; this tool speaks to servers "
                f"{low[0]}.{low[1]} to {high[0]}.{high[1]} (tested with 1.16.3): upgrade the "
                "server or install a matching qdrant-client"
            )

    def _raw_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            return fn(*args, **kwargs)
        except ResponseHandlingException as exc:
            raise SearchError(
                f"cannot reach Qdrant at {self.url}: {exc}; {UNREACHABLE_HINT}"
            ) from exc
        except UnexpectedResponse as exc:
            if exc.status_code in (401, 403):
                raise SearchError(
                    f"Qdrant at {self.url} refused the API key; set QDRANT_API_KEY or --qdrant-api-key"
                ) from exc
            reason = _reason(exc)
            if "read operations failed" in reason:  # a replica the read needed is down
                reason = (
                    f"a read could not reach the replicas its consistency needs "
                    f"({self.config.read_consistency or 'default'}); a peer is down: "
                    f"restart it or lower --read-consistency ({reason[:160]})"
                )
            raise SearchError(f"Qdrant at {self.url} answered {exc.status_code}: {reason}") from exc
        except (ConnectionError, OSError) as exc:
            raise SearchError(
                f"cannot reach Qdrant at {self.url}: {exc}; {UNREACHABLE_HINT}"
            ) from exc

    # -- collections -------------------------------------------------------------------
    def _read_meta(self, name: str) -> dict[str, Any] | None:
        if name not in self._meta:
            if not self._call(self.client.collection_exists, name):
                return None
            info = self._call(self.client.get_collection, name)
            meta = dict(info.config.metadata or {})
            if "vectors" not in meta:
                raise UsageError(
                    f"collection {name!r} was not made by this tool (no vector metadata)"
                )
            self._meta[name] = meta
        return self._meta[name]

    def _make(self, name: str, vectors: list[VectorSpec], meta: dict[str, Any]) -> None:
        m, cfg = self.models, self.config
        self._check_cluster()
        if cfg.shards > 1 and any(v.sparse and v.idf for v in vectors):
            log.warning(
                "collection %r: %d shards keep their own inverse document frequency per shard, "
                "so sparse (IDF) scores differ from one shard's; they converge as each shard "
                "holds more points",
                name,
                cfg.shards,
            )
        distances = {
            "cosine": m.Distance.COSINE,
            "dot": m.Distance.DOT,
            "euclid": m.Distance.EUCLID,
        }
        dense, sparse = vector_params(
            vectors,
            lambda v, **extra: m.VectorParams(
                size=v.size, distance=distances[v.distance], on_disk=cfg.on_disk, **extra
            ),
            lambda v: m.SparseVectorParams(modifier=m.Modifier.IDF if v.idf else None),
            multi={
                "multivector_config": m.MultiVectorConfig(
                    comparator=m.MultiVectorComparator.MAX_SIM
                ),
                "hnsw_config": hnsw_config(m.HnswConfigDiff, cfg, m=0),
            },
        )
        quant = None
        if cfg.quantization == "int8":
            quant = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True)
            )
        self._call(
            self.client.create_collection,
            name,
            vectors_config=dense,
            sparse_vectors_config=sparse or None,
            hnsw_config=hnsw_config(m.HnswConfigDiff, cfg),
            quantization_config=quant,
            shard_number=cfg.shards,
            replication_factor=cfg.replicas,
            write_consistency_factor=cfg.write_consistency,
            # a new collection is about to be loaded: no HNSW build until optimize()
            optimizers_config=m.OptimizersConfigDiff(indexing_threshold=0),
            metadata=meta,
        )
        for field in KEYWORD_FIELDS:
            self._call(self.client.create_payload_index, name, field, m.PayloadSchemaType.KEYWORD)

    def _check_cluster(self) -> None:
        """Replicas need as many peers: Qdrant would quietly keep fewer copies."""
        cfg = self.config
        if cfg.replicas == 1:
            return
        status = self._call(self.client.http.distributed_api.cluster_status).result
        peers = len(getattr(status, "peers", None) or {}) or 1
        if cfg.replicas > peers:
            raise UsageError(
                f"--replicas {cfg.replicas} needs at least {cfg.replicas} peers; "
                f"the Qdrant at {self.url} has {peers}"
            )

    def collections(self) -> list[str]:
        names = [c.name for c in self._call(self.client.get_collections).collections]
        return sorted(names)

    def _points(self, name: str) -> int:
        return self._call(self.client.count, name, exact=True).count

    def drop(self, name: str) -> None:
        self._meta.pop(name, None)
        if self._call(self.client.collection_exists, name):
            self._call(self.client.delete_collection, name)

    def prepare_load(self, name: str) -> None:
        """Hold the HNSW build back while points stream in (a resumed load too)."""
        self._set_indexing_threshold(name, 0)

    def optimize(
        self, name: str, timeout: float = GREEN_TIMEOUT, *, progress: ProgressFactory | None = None
    ) -> None:
        """End a load: every batch written, the HNSW build switched back on, and the
        collection green (indexed) before this returns. While it waits, ``progress`` gets
        a bar without a total, ticked on each look at the collection with the vectors
        Qdrant counts as indexed since the last look (0 when none: still alive)."""
        self.flush()
        self._set_indexing_threshold(name, self.config.indexing_threshold_kb)
        tick = (
            progress(f"waiting for {name!r} to turn green (HNSW build)", None) if progress else None
        )
        deadline = time.monotonic() + timeout
        status, shown = None, 0
        while time.monotonic() < deadline:
            info = self._call(self.client.get_collection, name)
            status = str(getattr(info.status, "value", info.status))
            if tick is not None:  # the count may fall as segments merge: never ticked back
                indexed = int(info.indexed_vectors_count or 0)
                tick(max(0, indexed - shown))
                shown = max(shown, indexed)
            if status == "green":
                return
            if status == "red":
                raise SearchError(
                    f"collection {name!r} at {self.url} is red (an optimizer failed): "
                    f"{info.optimizer_status}"
                )
            time.sleep(0.2)
        raise SearchError(
            f"collection {name!r} at {self.url} still {status} after {timeout:.0f}s of indexing; "
            "its points are stored: run the same command again to wait for it"
        )

    def _set_indexing_threshold(self, name: str, kb: int) -> None:
        optimizers = self.models.OptimizersConfigDiff(indexing_threshold=kb)
        self._call(self.client.update_collection, name, optimizers_config=optimizers)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self.client.close()


def _reason(exc: Any) -> str:
    """The server's own words from an error response, on one line."""
    content = getattr(exc, "content", b"") or b""
    try:
        import json

        status = json.loads(content).get("status", {})
        text = status.get("error") if isinstance(status, dict) else None
    except (ValueError, AttributeError):
        text = None
    text = text or getattr(exc, "reason_phrase", "") or str(exc)
    return " ".join(str(text).split())[:300]
