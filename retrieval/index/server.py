"""Server back-end: a Qdrant server (docker compose, or a cluster) through ``qdrant-client``.

``QdrantClient(":memory:")`` speaks the same API and stands in for a server in tests.
The collection's vectors and encoders live in the collection's own metadata.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from retrieval.encoders.base import SparseVec, Vector, VectorSpec
from retrieval.errors import SearchError, UsageError
from retrieval.index.base import (
    HYBRID,
    CollectionInfo,
    IndexConfig,
    SearchRequest,
    check_compatible,
    check_request,
    hit_from_point,
    specs_from_json,
    specs_to_json,
    to_numpy_vector,
)
from retrieval.index.edge import KEYWORD_FIELDS
from retrieval.index.rank_fusion import join_hybrid, split_hybrid
from retrieval.types import Hit

log = logging.getLogger(__name__)
UNREACHABLE_HINT = "start one with `docker compose up -d qdrant` or pass --qdrant-url"


class ServerIndex:
    """VectorIndex over a Qdrant server at ``url`` (or ``":memory:"``)."""

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
        api_key = api_key or os.environ.get("QDRANT_API_KEY") or None
        self.config = config or IndexConfig()
        if self.url == ":memory:":
            self.client = QdrantClient(":memory:")
        else:
            self.client = QdrantClient(url=self.url, api_key=api_key, timeout=timeout)
        self._meta: dict[str, dict[str, Any]] = {}

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, turning connection failures into one clear line."""
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
            raise SearchError(f"Qdrant at {self.url} answered {exc.status_code}: {exc}") from exc
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

    def create(
        self, name: str, vectors: list[VectorSpec], meta: dict[str, Any], *, recreate: bool = False
    ) -> None:
        m, cfg = self.models, self.config
        if recreate:
            self.drop(name)
        existing = self._read_meta(name)
        if existing is not None:
            check_compatible(name, existing, vectors, meta)
            return
        distances = {
            "cosine": m.Distance.COSINE,
            "dot": m.Distance.DOT,
            "euclid": m.Distance.EUCLID,
        }
        dense = {
            v.name: m.VectorParams(size=v.size, distance=distances[v.distance], on_disk=cfg.on_disk)
            for v in vectors
            if not v.sparse and not v.multivector
        }
        for v in vectors:  # ColBERT-style: MAX_SIM, no HNSW graph (they rescore only)
            if v.multivector:
                dense[v.name] = m.VectorParams(
                    size=v.size,
                    distance=distances[v.distance],
                    on_disk=cfg.on_disk,
                    multivector_config=m.MultiVectorConfig(
                        comparator=m.MultiVectorComparator.MAX_SIM
                    ),
                    hnsw_config=m.HnswConfigDiff(m=0),
                )
        sparse = {
            v.name: m.SparseVectorParams(modifier=m.Modifier.IDF if v.idf else None)
            for v in vectors
            if v.sparse
        }
        quant = None
        if cfg.quantization == "int8":
            quant = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True)
            )
        full = {**meta, "vectors": specs_to_json(vectors), "index": dict(cfg.__dict__)}
        self._call(
            self.client.create_collection,
            name,
            vectors_config=dense,
            sparse_vectors_config=sparse or None,
            hnsw_config=m.HnswConfigDiff(
                m=cfg.hnsw_m,
                ef_construct=cfg.hnsw_ef_construct,
                full_scan_threshold=cfg.full_scan_threshold_kb,
            ),
            quantization_config=quant,
            shard_number=cfg.shards,
            replication_factor=cfg.replicas,
            metadata=full,
        )
        if self.url != ":memory:":  # local mode has no payload indexes
            for field in KEYWORD_FIELDS:
                self._call(
                    self.client.create_payload_index, name, field, m.PayloadSchemaType.KEYWORD
                )
        self._meta[name] = full

    def collections(self) -> list[str]:
        names = [c.name for c in self._call(self.client.get_collections).collections]
        return sorted(names)

    def info(self, name: str) -> CollectionInfo | None:
        meta = self._read_meta(name)
        if meta is None:
            return None
        points = self._call(self.client.count, name, exact=True).count
        return CollectionInfo(name, points, specs_from_json(meta["vectors"]), meta)

    def drop(self, name: str) -> None:
        self._meta.pop(name, None)
        if self._call(self.client.collection_exists, name):
            self._call(self.client.delete_collection, name)

    def optimize(self, name: str) -> None:
        """The server indexes in the background; nothing to do."""

    def close(self) -> None:
        self.client.close()

    # -- points ------------------------------------------------------------------------
    def _vector(self, vec: Vector) -> Any:
        if isinstance(vec, SparseVec):
            return self.models.SparseVector(
                indices=vec.indices.tolist(), values=vec.values.tolist()
            )
        return vec.tolist()

    def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: dict[str, Sequence[Vector | None]],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        points = []
        for i, pid in enumerate(ids):
            named = {k: self._vector(col[i]) for k, col in vectors.items() if col[i] is not None}
            points.append(self.models.PointStruct(id=pid, vector=named, payload=payloads[i]))
        if points:
            self._call(self.client.upsert, name, points=points, wait=True)

    def existing(self, name: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        records = self._call(
            self.client.retrieve, name, ids=list(ids), with_payload=False, with_vectors=False
        )
        return {str(r.id) for r in records}

    def fetch(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Vector]]:
        if not ids:
            return {}
        records = self._call(
            self.client.retrieve, name, ids=list(ids), with_payload=False, with_vectors=True
        )
        return {
            str(r.id): {k: to_numpy_vector(v) for k, v in (r.vector or {}).items()} for r in records
        }

    def search(self, name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        if not requests:
            return []
        meta = self._read_meta(name)
        if meta is None:
            raise UsageError(f"no collection {name!r} at {self.url}; index one first")
        known = {v.name: v for v in specs_from_json(meta["vectors"])}
        for req in requests:
            check_request(req, known)
        flat, counts = split_hybrid(requests)  # hybrid: fused here, deterministically
        batch = [self._request(r) for r in flat]
        responses = self._call(self.client.query_batch_points, name, requests=batch)
        answers = [[hit_from_point(p) for p in r.points] for r in responses]
        return join_hybrid(requests, counts, answers)

    def _request(self, req: SearchRequest) -> Any:
        m, cfg = self.models, self.config
        quant = None
        if cfg.quantization:
            quant = m.QuantizationSearchParams(rescore=cfg.rescore, oversampling=cfg.oversampling)
        params = m.SearchParams(
            hnsw_ef=max(cfg.hnsw_ef, req.limit), exact=cfg.exact, quantization=quant
        )
        if self.url == ":memory:":
            params = None  # local mode always searches exactly and warns about params
        flt = None
        if req.filter:
            flt = m.Filter(
                must=[
                    m.FieldCondition(key=k, match=m.MatchValue(value=v))
                    for k, v in req.filter.items()
                ]
            )
        payload: Any = (
            req.payload if isinstance(req.payload, bool) else sorted({"id", *req.payload})
        )
        if req.using != HYBRID:
            return m.QueryRequest(
                query=self._vector(req.vectors[req.using]),
                using=req.using,
                limit=req.limit,
                filter=flt,
                params=params,
                with_payload=payload,
            )
        pl = req.prefetch_limit or max(req.limit, 100)
        prefetch = [
            m.Prefetch(
                query=self._vector(req.vectors[n]), using=n, limit=pl, params=params, filter=flt
            )
            for n in req.hybrid
        ]
        if req.rescore:
            return m.QueryRequest(
                prefetch=prefetch,
                query=self._vector(req.vectors[req.rescore]),
                using=req.rescore,
                limit=req.limit,
                filter=flt,
                with_payload=payload,
            )
        fusion = m.Fusion.RRF if req.fusion == "rrf" else m.Fusion.DBSF
        return m.QueryRequest(
            prefetch=prefetch,
            query=m.FusionQuery(fusion=fusion),
            limit=req.limit,
            filter=flt,
            with_payload=payload,
        )
