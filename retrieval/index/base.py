"""The VectorIndex protocol shared by the embedded (edge) and server back-ends.

A collection stores every product as one Qdrant point: id = UUIDv5 of (dataset,
product id), so re-running or resuming an index job never duplicates a listing;
payload = id, title, group, image path, dataset (and split where the set has one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from retrieval.checks import MAX_COUNT, check_range
from retrieval.encoders.base import Vector, VectorSpec
from retrieval.errors import UsageError
from retrieval.types import Hit

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/product-search/points")
HYBRID = "hybrid"
FUSIONS = ("rrf", "dbsf")
MAX_NAME = 200  # characters of a collection name (a folder name on the edge back-end)
SCAN_BATCH = 1000  # point ids per page when a dataset's points are listed
KEYWORD_FIELDS = ("split", "group", "dataset")  # payload fields indexed for filters


def check_collection_name(name: str) -> str:
    """A collection name usable as a folder and a server path, or a UsageError."""
    if not isinstance(name, str) or not name or name.startswith(".") or len(name) > MAX_NAME:
        raise UsageError(
            f"bad collection name {str(name)[:40]!r}: 1-{MAX_NAME} characters, not starting with '.'"
        )
    if (
        len(name.encode("utf-8")) > 250
        or any(c in name for c in '/\\:*?"<>|')
        or not name.isprintable()
    ):
        raise UsageError(
            f"bad collection name {name[:40]!r}: no slashes, control or special characters"
        )
    return name


def point_id(dataset: str, product_id: str) -> str:
    """The point id of a product: UUIDv5 of (dataset, product id), stable across runs."""
    return str(uuid.uuid5(_NAMESPACE, f"{dataset}\x1f{product_id}"))


@dataclass(frozen=True)
class IndexConfig:
    """HNSW, quantization and storage settings of a collection and its searches."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128
    # Segments below this size (KB) are scanned exactly instead of using HNSW.
    full_scan_threshold_kb: int = 10_000
    exact: bool = False
    quantization: str | None = None  # None | "int8" (scalar quantization, rescored)
    oversampling: float = 2.0
    rescore: bool = True
    on_disk: bool = False  # server: vectors on disk (mmap), quantized copy in RAM
    shards: int = 1  # server cluster: shards per collection
    replicas: int = 1  # server cluster: replication factor
    # server cluster: replicas that must acknowledge a write before it counts
    write_consistency: int = 1
    # server cluster: replicas a read must agree with ("all", "majority", "quorum" or a count);
    # "" leaves Qdrant's default (one replica answers)
    read_consistency: str = ""
    upload_streams: int = 2  # server: batches written in parallel during a load
    # server: the HNSW build waits until a load ends (Qdrant's bulk-upload advice), then
    # segments past this size (KB) are indexed; Qdrant's default
    indexing_threshold_kb: int = 10_000

    def __post_init__(self) -> None:
        if self.quantization not in (None, "int8"):
            raise UsageError(f"unknown quantization {self.quantization!r}; known: int8")
        if self.hnsw_m < 2 or self.hnsw_ef_construct < 4 or self.hnsw_ef < 1:
            raise UsageError("hnsw_m must be >= 2, hnsw_ef_construct >= 4, hnsw_ef >= 1")
        check_range("index.hnsw_m", self.hnsw_m, 2, 1024)
        for key in ("hnsw_ef_construct", "hnsw_ef", "full_scan_threshold_kb", "shards", "replicas"):
            check_range(f"index.{key}", getattr(self, key), 1, MAX_COUNT)
        check_range("index.write_consistency", self.write_consistency, 1, MAX_COUNT)
        check_range("index.upload_streams", self.upload_streams, 1, 64)
        check_range("index.indexing_threshold_kb", self.indexing_threshold_kb, 1, MAX_COUNT)
        if self.write_consistency > self.replicas:
            raise UsageError(
                f"write consistency {self.write_consistency} needs at least as many replicas "
                f"(--replicas {self.replicas})"
            )
        read_consistency(self.read_consistency)  # raises on a bad value


READ_CONSISTENCY = ("all", "majority", "quorum")


def read_consistency(value: str) -> int | str | None:
    """A read-consistency setting as Qdrant takes it: None, a level name or a count."""
    if not value:
        return None
    if value in READ_CONSISTENCY:
        return value
    if value.isdigit() and 1 <= int(value) <= MAX_COUNT:
        return int(value)
    raise UsageError(
        f"unknown read consistency {value!r}: one of {', '.join(READ_CONSISTENCY)} or a count"
    )


@dataclass(frozen=True)
class SearchRequest:
    """One query: vectors by name, and which one to search (or ``hybrid``)."""

    vectors: dict[str, Vector]
    using: str
    limit: int
    hybrid: tuple[str, ...] = ()  # vector names prefetched and fused when using == hybrid
    fusion: str = "rrf"
    prefetch_limit: int | None = None
    filter: dict[str, str] | None = None  # payload field == value, all must hold
    payload: bool | Sequence[str] = True
    # hybrid only: a multivector that rescores the prefetched candidates (MAX_SIM) in
    # place of RRF / DBSF fusion, the layout Qdrant documents for BGE-M3
    rescore: str | None = None


@dataclass(frozen=True)
class PointBatch:
    """Points to write: ids (from ``point_id``), vector columns by name (one entry per id;
    None leaves that vector out of that point) and one payload per id."""

    ids: Sequence[str]
    vectors: dict[str, Sequence[Vector | None]]
    payloads: Sequence[dict[str, Any]]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.payloads) != n or any(len(col) != n for col in self.vectors.values()):
            raise ValueError(f"a batch of {n} points needs {n} payloads and {n} of each vector")

    def __len__(self) -> int:
        return len(self.ids)

    def named(self, i: int) -> dict[str, Vector]:
        """The vectors of point ``i`` by name, its missing ones left out."""
        return {k: col[i] for k, col in self.vectors.items() if col[i] is not None}

    def complete(self) -> bool:
        """Every point has every vector (the server sends such a batch as columns)."""
        return all(v is not None for col in self.vectors.values() for v in col)


@dataclass
class CollectionInfo:
    """What ``search collections`` shows about one collection."""

    name: str
    points: int
    vectors: list[VectorSpec]
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VectorIndex(Protocol):
    """A place that stores named vectors per product and answers batched queries."""

    def create(
        self, name: str, vectors: list[VectorSpec], meta: dict[str, Any], *, recreate: bool = False
    ) -> None:
        """Create the collection, or check that the existing one has the same vectors."""
        ...

    def upsert(self, name: str, points: PointBatch) -> None:
        """Insert or replace points (ids from ``point_id``); None vectors are left out."""
        ...

    def search(self, name: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Answer a batch of queries; hits carry the product id and the payload."""
        ...

    def existing(self, name: str, ids: Sequence[str]) -> set[str]:
        """The subset of point ids already stored."""
        ...

    def fetch(self, name: str, ids: Sequence[str]) -> dict[str, dict[str, Vector]]:
        """Stored vectors of the given point ids (absent ids are left out)."""
        ...

    def stamps(self, name: str, ids: Sequence[str]) -> dict[str, str | None]:
        """The fingerprint (payload ``fp``) of each stored point among ``ids`` (None for a
        point stored without one); absent ids are left out."""
        ...

    def scan_ids(self, name: str, dataset: str) -> Iterator[list[str]]:
        """Every stored point id of one dataset, in batches."""
        ...

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Remove points by id."""
        ...

    def info(self, name: str) -> CollectionInfo | None:
        """Point count, vectors and metadata of a collection (None if absent)."""
        ...

    def collections(self) -> list[str]:
        """Names of all collections."""
        ...

    def optimize(self, name: str) -> None:
        """Build indexes after a bulk load (HNSW on the edge back-end)."""
        ...

    def drop(self, name: str) -> None:
        """Delete a collection."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


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
