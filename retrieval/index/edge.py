"""Embedded back-end: Qdrant Edge, the Qdrant engine in process, one shard per collection.

Layout under the data dir: ``edge/<collection>/shard`` (the shard with its WAL, which
survives a SIGKILL) and ``edge/<collection>/meta.json`` (vectors, encoders, dataset).
HNSW is built only by ``optimize()``; call it after bulk loads or queries scan.
One process holds a shard at a time: a second open fails with a clear message.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval.atomic import DamagedFile, read_json, write_json
from retrieval.encoders.base import SparseVec, Vector, VectorSpec
from retrieval.errors import SearchError, UsageError
from retrieval.index.base import (
    HYBRID,
    KEYWORD_FIELDS,
    IndexConfig,
    PointBatch,
    SearchRequest,
    check_collection_name,
)
from retrieval.index.qdrant import (
    QdrantIndex,
    hnsw_config,
    payload_filter,
    search_params,
    specs_from_json,
    vector_params,
)
from retrieval.index.rank_fusion import prefetch_limit
from retrieval.index.space import (
    SHARD_BYTES,
    disk_full_error,
    estimate_bytes,
    is_disk_full,
    require_space,
    require_writable,
)
from retrieval.types import ProgressFactory

log = logging.getLogger(__name__)


class EdgeIndex(QdrantIndex):
    """VectorIndex over ``qdrant-edge-py`` shards stored under ``root``."""

    def __init__(self, root: str | Path, config: IndexConfig | None = None) -> None:
        import qdrant_edge as qe

        self.qe = qe
        self.root = Path(root) / "edge"
        self.where = f"under {self.root.parent}"
        self.config = config or IndexConfig()
        self._shards: dict[str, Any] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    # -- collections -------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        return self.root / check_collection_name(name)

    def _read_meta(self, name: str) -> dict[str, Any] | None:
        if name not in self._meta:
            path = self._dir(name) / "meta.json"
            if not path.exists():
                return None
            rebuild = f"rebuild it: search index DATASET --collection {name} --recreate"
            meta = read_json(path, rebuild)
            try:
                specs_from_json(meta["vectors"])
            except (KeyError, TypeError, AttributeError) as exc:
                raise DamagedFile(f"damaged file {path} (no vector list); {rebuild}") from exc
            self._meta[name] = meta
        return self._meta[name]

    def _shard(self, name: str) -> Any:
        shard = self._shards.get(name)
        if shard is None:
            if self._read_meta(name) is None:
                raise UsageError(f"no collection {name!r} {self.where}; index one first")
            try:
                shard = self.qe.EdgeShard.load(str(self._dir(name) / "shard"))
            except Exception as exc:  # the binding raises a plain Exception
                if "WouldBlock" in str(exc):
                    raise SearchError(
                        f"collection {name!r} is open in another process (a running `search "
                        "index`?); wait for it or use a server back-end for shared access"
                    ) from exc
                raise SearchError(f"cannot open collection {name!r}: {exc}") from exc
            self._shards[name] = shard
        return shard

    def _make(self, name: str, vectors: list[VectorSpec], meta: dict[str, Any]) -> None:
        folder = self._dir(name)
        require_writable(self.root, f"collection {name!r}")
        require_space(self.root, SHARD_BYTES, f"a new collection {name!r}")
        try:
            if folder.exists():  # a creation killed before meta.json was written holds no points
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            self._shards[name] = self.qe.EdgeShard.create(
                str(folder / "shard"), self._edge_config(vectors)
            )
            for field in KEYWORD_FIELDS:
                self._shards[name].update(
                    self.qe.UpdateOperation.create_field_index(
                        field, self.qe.PayloadSchemaType.Keyword
                    )
                )
            write_json(folder / "meta.json", meta, sort_keys=True)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.root) from exc
            raise SearchError(
                f"cannot create collection {name!r} under {self.root}: {exc.strerror or exc}"
            ) from exc
        except SearchError:
            raise
        except Exception as exc:  # the binding raises a plain Exception
            if is_disk_full(exc):
                raise disk_full_error(self.root) from exc
            raise SearchError(f"cannot create collection {name!r}: {exc}") from exc

    def reserve(self, name: str, points: int) -> None:
        """Refuse to write ``points`` more points without the disk room for them (the
        edge shard maps its files: a full disk would end the process with SIGBUS)."""
        meta = self._read_meta(name) or {}
        sizes = [v.size for v in specs_from_json(meta.get("vectors", [])) if not v.sparse]
        require_space(self.root, estimate_bytes(sizes, points), f"{points} points of {name!r}")

    def _edge_config(self, vectors: list[VectorSpec]) -> Any:
        qe, cfg = self.qe, self.config
        distances = {
            "cosine": qe.Distance.Cosine,
            "dot": qe.Distance.Dot,
            "euclid": qe.Distance.Euclid,
        }
        quant = (
            qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True)
            if cfg.quantization == "int8"
            else None
        )
        dense, sparse = vector_params(
            vectors,
            lambda v, **extra: qe.EdgeVectorParams(
                size=v.size, distance=distances[v.distance], **extra
            ),
            lambda v: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf if v.idf else None),
            multi={
                "multivector_config": qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                "hnsw_config": hnsw_config(qe.HnswIndexConfig, cfg, m=0),
            },
        )
        return qe.EdgeConfig(
            vectors=dense or None,
            sparse_vectors=sparse or None,
            hnsw_config=hnsw_config(qe.HnswIndexConfig, cfg),
            quantization_config=quant,
        )

    def collections(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").exists())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SearchError(f"cannot list {self.root}: {exc.strerror or exc}") from exc

    def _points(self, name: str) -> int:
        return self._shard(name).info().points_count

    def drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        self._meta.pop(name, None)
        folder = self._dir(name)
        if folder.exists():
            shutil.rmtree(folder)

    def optimize(self, name: str, *, progress: ProgressFactory | None = None) -> None:
        shard = self._shard(name)
        shard.flush()
        # one call that returns when the build is done: a bar without a total meanwhile
        tick = progress(f"building the HNSW index of {name!r}", None) if progress else None
        shard.optimize()
        if tick is not None:
            tick(1)

    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()

    # -- points ------------------------------------------------------------------------
    def _vector(self, vec: Vector) -> Any:
        if isinstance(vec, SparseVec):
            return self.qe.SparseVector(vec.indices.tolist(), vec.values.tolist())
        return vec.tolist()

    def upsert(self, name: str, points: PointBatch) -> None:
        import uuid

        if not len(points):
            return
        rows = [
            self.qe.Point(
                uuid.UUID(pid),
                {k: self._vector(v) for k, v in points.named(i).items()},
                points.payloads[i],
            )
            for i, pid in enumerate(points.ids)
        ]
        try:
            self._shard(name).update(self.qe.UpdateOperation.upsert_points(rows))
        except Exception as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.root) from exc
            raise

    def _records(
        self, name: str, ids: Sequence[str], *, vectors: bool = False, payload: Any = False
    ) -> list[Any]:
        import uuid

        if not ids:
            return []
        keep = self.qe.PayloadSelector.Include(payload) if payload else False
        return self._shard(name).retrieve([uuid.UUID(i) for i in ids], keep, vectors)

    def _scroll(self, name: str, dataset: str, offset: Any, limit: int) -> tuple[list[Any], Any]:
        qe = self.qe
        flt = qe.Filter(must=[qe.FieldCondition("dataset", match=qe.MatchValue(dataset))])
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=flt, with_payload=False, with_vector=False
        )
        return self._shard(name).scroll(request)

    def delete(self, name: str, ids: Sequence[str]) -> None:
        import uuid

        if ids:
            self._shard(name).update(
                self.qe.UpdateOperation.delete_points([uuid.UUID(i) for i in ids])
            )

    def _query(self, name: str, requests: list[SearchRequest]) -> list[list[Any]]:
        batch = self.qe.QueryBatchRequest([self._request(r) for r in requests])
        return self._shard(name).query_batch(batch)

    def _request(self, req: SearchRequest) -> Any:
        qe = self.qe
        params = search_params(qe, self.config, req.limit)
        flt = payload_filter(qe, req.filter)
        payload: Any = req.payload
        if not isinstance(payload, bool):
            payload = qe.PayloadSelector.Include(sorted({"id", *payload}))
        if req.using != HYBRID:
            query = qe.Query.Nearest(self._vector(req.vectors[req.using]), using=req.using)
            return qe.QueryRequest(
                limit=req.limit, query=query, filter=flt, params=params, with_payload=payload
            )
        pl = prefetch_limit(req)
        prefetches = [
            qe.Prefetch(
                limit=pl,
                query=qe.Query.Nearest(self._vector(req.vectors[n]), using=n),
                params=params,
                filter=flt,
            )
            for n in req.hybrid
        ]
        if req.rescore:
            query = qe.Query.Nearest(self._vector(req.vectors[req.rescore]), using=req.rescore)
        else:
            query = qe.Fusion.Rrf(k=60) if req.fusion == "rrf" else qe.Fusion.Dbsf()
        return qe.QueryRequest(
            limit=req.limit, prefetches=prefetches, query=query, filter=flt, with_payload=payload
        )
