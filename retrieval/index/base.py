"""The VectorIndex protocol shared by the embedded (edge) and server back-ends.

A collection stores every product as one Qdrant point: id = UUIDv5 of (dataset,
product id), so re-running or resuming an index job never duplicates a listing;
payload = id, title, group, image path, dataset (and split where the set has one).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from retrieval.checks import MAX_COUNT, check_range
from retrieval.encoders.base import Vector, VectorSpec
from retrieval.errors import UsageError
from retrieval.types import Hit, ProgressFactory

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

    def optimize(self, name: str, *, progress: ProgressFactory | None = None) -> None:
        """Build indexes after a bulk load (HNSW on the edge back-end; the server waits for
        the collection to turn green), showing a ``progress`` bar while it waits."""
        ...

    def drop(self, name: str) -> None:
        """Delete a collection."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...
