"""What the two back-ends share beyond the protocol: the Qdrant data model in either
client's models (``qdrant_edge`` or ``qdrant_client.models`` take the same keywords), the
checks of a collection and a request, and ``QdrantIndex``, the ``VectorIndex`` methods
whose flow is the same on both (create, info, search, existing, stamps, fetch, scan_ids)
over a few client calls each back-end implements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from retrieval.encoders.base import Vector, VectorSpec
from retrieval.errors import UsageError
from retrieval.index.base import (
    FUSIONS,
    HYBRID,
    SCAN_BATCH,
    CollectionInfo,
    IndexConfig,
    SearchRequest,
)
from retrieval.index.rank_fusion import join_hybrid, split_hybrid
from retrieval.types import Hit


def matches_existing(
    name: str, existing: dict[str, Any] | None, vectors: list[VectorSpec], meta: dict[str, Any]
) -> bool:
    """Whether a collection to create is there already (``existing``: its metadata, None
    where there is none); one that stores other vectors or vectors from other encoders is
    a UsageError naming ``--recreate``."""
    if existing is None:
        return False
    check_same_vectors(name, specs_from_json(existing["vectors"]), vectors)
    check_same_encoders(name, existing, meta)
    return True


def vector_params(
    vectors: list[VectorSpec],
    dense: Callable[..., Any],
    sparse: Callable[[VectorSpec], Any],
    multi: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new collection's vector configs by name in a client's models: (dense, sparse).
    ``dense(spec, **extra)`` builds a dense vector's, with ``multi`` as ``extra`` for a
    multivector (ColBERT-style: MAX_SIM and no HNSW graph, as they only rescore);
    ``sparse(spec)`` a sparse vector's."""
    single = {v.name: dense(v, **(multi if v.multivector else {})) for v in vectors if not v.sparse}
    return single, {v.name: sparse(v) for v in vectors if v.sparse}


def hnsw_config(make: Any, cfg: IndexConfig, m: int | None = None) -> Any:
    """The collection's HNSW settings as ``make`` (either client's HNSW config class, which
    take the same keywords) builds them; ``m=0`` for a vector without a graph."""
    return make(
        m=cfg.hnsw_m if m is None else m,
        ef_construct=cfg.hnsw_ef_construct,
        full_scan_threshold=cfg.full_scan_threshold_kb,
    )


def hit_from_point(point: Any) -> Hit:
    """A scored point of either client as a Hit (product id from the payload)."""
    payload = point.payload or {}
    pid = payload["id"] if "id" in payload else point.id  # edge's .id builds a uuid.UUID
    return Hit(id=str(pid), score=float(point.score), payload=payload)


def check_same_vectors(name: str, existing: list[VectorSpec], wanted: list[VectorSpec]) -> None:
    """Raise a usage error naming ``--recreate`` when the vectors of a collection differ."""
    have = {v.name: v for v in existing}
    want = {v.name: v for v in wanted}
    for vname, spec in want.items():
        old = have.get(vname)
        if old is None:
            raise UsageError(
                f"collection {name!r} has no vector {vname!r} (it has {', '.join(sorted(have))}); "
                "pass --recreate to rebuild it or --collection to pick another"
            )
        if old.size != spec.size or old.multivector != spec.multivector:
            raise UsageError(
                f"vector {vname!r} has size {spec.size} but collection {name!r} stores "
                f"{old.size}; pass --recreate to rebuild it or --collection to pick another"
            )


def check_same_encoders(name: str, existing: dict[str, Any], meta: dict[str, Any]) -> None:
    """Same vector names but other encoder models would mix incomparable vectors."""
    old, new = existing.get("encoders"), meta.get("encoders")
    if old is not None and new is not None and sorted(old) != sorted(new):
        raise UsageError(
            f"collection {name!r} was built with encoders {old}, not {new}; "
            "pass --recreate to rebuild it or --collection to pick another"
        )


def search_params(models: Any, cfg: IndexConfig, limit: int) -> Any:
    """A request's ``SearchParams`` in either client's models (``qdrant_edge`` or
    ``qdrant_client.models``, which take the same keywords): the collection's HNSW ef (at
    least the limit), exact search and quantization rescoring."""
    quant = None
    if cfg.quantization:
        quant = models.QuantizationSearchParams(rescore=cfg.rescore, oversampling=cfg.oversampling)
    return models.SearchParams(hnsw_ef=max(cfg.hnsw_ef, limit), exact=cfg.exact, quantization=quant)


def payload_filter(models: Any, flt: dict[str, str] | None) -> Any:
    """A request's payload equality filter (every field must match) in either client's
    models, or None."""
    if not flt:
        return None
    conditions = [
        models.FieldCondition(key=k, match=models.MatchValue(value=v)) for k, v in flt.items()
    ]
    return models.Filter(must=conditions)


def check_request(req: SearchRequest, known: dict[str, VectorSpec]) -> None:
    """Validate a request against a collection's vectors: names, sizes, fusion."""
    names = req.hybrid if req.using == HYBRID else (req.using,)
    if req.using == HYBRID and len(names) < 2 and not req.rescore:
        raise UsageError("a hybrid query needs at least two vectors to fuse")
    if req.rescore:
        if req.using != HYBRID:
            raise UsageError("rescoring with a multivector needs a hybrid query")
        rescorer = known.get(req.rescore)
        if rescorer is None or not rescorer.multivector:
            have = sorted(v.name for v in known.values() if v.multivector) or ["none"]
            raise UsageError(
                f"cannot rescore with {req.rescore!r}: not a multivector of this collection "
                f"(multivectors: {', '.join(have)})"
            )
        names = (*names, req.rescore)
    if req.fusion not in FUSIONS:
        raise UsageError(f"unknown fusion {req.fusion!r}; known: {', '.join(FUSIONS)}")
    for vname in names:
        spec = known.get(vname)
        if spec is None:
            raise UsageError(
                f"unknown vector {vname!r}; the collection has: {', '.join(sorted(known))}"
            )
        vec = req.vectors.get(vname)
        if vec is None:
            raise UsageError(f"the query has no {vname!r} vector")
        if spec.sparse:
            continue
        shape = getattr(vec, "shape", (len(vec),))
        if spec.multivector != (len(shape) == 2):
            kind = "a multivector" if len(shape) == 2 else "a single vector"
            want = "a multivector" if spec.multivector else "a single vector"
            raise UsageError(
                f"query vector {vname!r} is {kind}, but the collection stores {want} there"
            )
        if shape[-1] != spec.size:
            raise UsageError(
                f"query vector {vname!r} has size {shape[-1]}, the collection expects {spec.size}"
            )


def to_numpy_vector(value: Any) -> Vector:
    """A vector as returned by a Qdrant client (list or sparse object) as ours."""
    import numpy as np

    from retrieval.encoders.base import SparseVec

    if hasattr(value, "indices"):
        return SparseVec(
            np.asarray(value.indices, dtype=np.uint32), np.asarray(value.values, dtype=np.float32)
        )
    return np.asarray(value, dtype=np.float32)


def specs_to_json(vectors: list[VectorSpec]) -> list[dict[str, Any]]:
    """Vector specs as JSON-able dicts (stored in collection metadata)."""
    return [
        {"name": v.name, "size": v.size, "distance": v.distance, "idf": v.idf}
        | ({"multivector": True} if v.multivector else {})
        for v in vectors
    ]


def specs_from_json(data: list[dict[str, Any]]) -> list[VectorSpec]:
    """Inverse of ``specs_to_json``."""
    return [
        VectorSpec(
            d["name"],
            d["size"],
            d.get("distance", "cosine"),
            d.get("idf", False),
            d.get("multivector", False),
        )
        for d in data
    ]


class QdrantIndex:
    """The ``VectorIndex`` methods both back-ends share, over the client calls each one
    implements: ``_read_meta`` (a collection's metadata, None where there is none),
    ``_make`` (a new collection with that metadata), ``_points`` (its point count),
    ``_query`` (a flat batch of requests: the scored points of each), ``_records`` (stored
    points by id) and ``_scroll`` (a page of at most ``limit`` of a dataset's points and
    the offset of the next, None after the last). ``where`` names the store in errors."""

    config: IndexConfig
    where: str
    _meta: dict[str, dict[str, Any]]

    def _read_meta(self, name: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _make(self, name: str, vectors: list[VectorSpec], meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def _points(self, name: str) -> int:
        raise NotImplementedError

    def _query(self, name: str, requests: list[SearchRequest]) -> list[list[Any]]:
        raise NotImplementedError

    def _records(
        self, name: str, ids: Sequence[str], *, vectors: bool = False, payload: Any = False
    ) -> list[Any]:
        raise NotImplementedError

    def _scroll(self, name: str, dataset: str, offset: Any, limit: int) -> tuple[list[Any], Any]:
        raise NotImplementedError

    def drop(self, name: str) -> None:
        raise NotImplementedError

    def create(
        self, name: str, vectors: list[VectorSpec], meta: dict[str, Any], *, recreate: bool = False
    ) -> None:
        if recreate:
            self.drop(name)
        if matches_existing(name, self._read_meta(name), vectors, meta):
            return
        full = {**meta, "vectors": specs_to_json(vectors), "index": dict(self.config.__dict__)}
        self._make(name, vectors, full)
        self._meta[name] = full

    def info(self, name: str) -> CollectionInfo | None:
        meta = self._read_meta(name)
        if meta is None:
            return None
        return CollectionInfo(name, self._points(name), specs_from_json(meta["vectors"]), meta)

    def search(self, name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        if not requests:
            return []
        meta = self._read_meta(name)
        if meta is None:
            raise UsageError(f"no collection {name!r} {self.where}; index one first")
        known = {v.name: v for v in specs_from_json(meta["vectors"])}
        for req in requests:
            check_request(req, known)
        flat, counts = split_hybrid(requests)  # hybrid: fused here, deterministically
        rows = self._query(name, flat)
        return join_hybrid(requests, counts, [[hit_from_point(p) for p in row] for row in rows])

    def existing(self, name: str, ids: Sequence[str]) -> set[str]:
        return {str(r.id) for r in self._records(name, ids)}

    def stamps(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        return {
            str(r.id): (r.payload or {}).get("fp") for r in self._records(name, ids, payload=["fp"])
        }

    def fetch(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Vector]]:
        return {
            str(r.id): {k: to_numpy_vector(v) for k, v in (r.vector or {}).items()}
            for r in self._records(name, ids, vectors=True)
        }

    def scan_ids(self, name: str, dataset: str) -> Iterator[list[str]]:
        offset = None
        while True:
            records, offset = self._scroll(name, dataset, offset, SCAN_BATCH)
            if records:
                yield [str(r.id) for r in records]
            if offset is None:
                return
