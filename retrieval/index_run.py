"""What one index run reports and leaves behind: ``IndexReport`` (counts, failures,
seconds; written as JSON beside the collection by ``write_report``), what storing one
batch did (``StoredBatch``), the journal unreadable items go to as they are met
(``Journal``: a ``FailureLog`` or a Ray actor holding one), and the removal of the
listings a source no longer has (``remove_missing``), and the listings a server lost in
flight stored again (``store_lost``). ``Retriever.index_dataset`` and the
Ray workers (``search.indexing_ray_tasks``) write through them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from retrieval.atomic import write_json
from retrieval.index.base import VectorIndex
from retrieval.types import Product

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What an index run did; written as JSON next to the collection."""

    collection: str
    dataset: str
    seen: int = 0
    written: int = 0
    skipped_existing: int = 0
    duplicates: int = 0
    changed: int = 0  # stored before, encoded again: the listing changed in the source
    removed: int = 0  # stored before, no longer in the source
    rewritten: int = 0  # written, then not found after the load (lost in flight): written again
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Every field, with ``failures`` as a count and the items in ``failed_items``."""
        counted = {"failures": len(self.failures), "seconds": round(self.seconds, 3)}
        return asdict(self) | counted | {"failed_items": dict(self.failures)}


class Journal(Protocol):
    """Where unreadable items are logged as they are met (a ``FailureLog``, or a Ray
    actor holding one)."""

    def failures_of(self, ids: Iterable[str]) -> dict[str, str]: ...

    def append(self, failures: dict[str, str]) -> None: ...


@dataclass
class StoredBatch:
    """What ``Retriever.store_batch`` did with one batch."""

    written: int
    skipped: int
    failures: dict[str, str]
    changed: int = 0  # of the written: stored before, from a listing that has changed


def remove_missing(index: VectorIndex, collection: str, dataset: str, ids: set[str]) -> int:
    """Delete the stored points of ``dataset`` whose point ids are not in ``ids`` (the
    listings the source has now); returns how many went."""
    gone = 0
    for page in index.scan_ids(collection, dataset):
        stale = [pid for pid in page if pid not in ids]
        if stale:
            index.delete(collection, stale)
            gone += len(stale)
    if gone:
        log.info("removed %d listings no longer in %s", gone, dataset)
    return gone


def store_lost(
    index: VectorIndex,
    collection: str,
    dataset: str,
    products: Sequence[Product],
    store: Callable[[list[Product]], StoredBatch],
    batch_size: int,
) -> int:
    """After a load into a server: when the collection holds fewer of ``dataset``'s
    listings than ``products`` has (a batch lost in flight, as when a peer of a cluster
    goes down while it is written), the absent ones are stored again through ``store``
    (which skips what is stored; ids are stable, so nothing is stored twice), the
    collection is waited on again and its count checked (``verify_count``: one line if
    still short). Returns how many were stored again."""
    shortfall = getattr(index, "shortfall", None)  # the server back-end's count check
    unique: dict[str, Product] = {}
    for p in products:
        unique.setdefault(p.id, p)
    short = shortfall(collection, dataset, len(unique)) if shortfall is not None else 0
    if not short:
        return 0
    log.warning(
        "collection %r lacks %d of the %d listings of %s after the load (a write lost in "
        "flight, as when a peer goes down); storing them again",
        collection,
        short,
        len(unique),
        dataset,
    )
    items, again = list(unique.values()), 0
    for start in range(0, len(items), batch_size):
        again += store(items[start : start + batch_size]).written
    index.optimize(collection)
    index.verify_count(collection, dataset, len(unique))  # type: ignore[attr-defined]
    return again


def write_report(report: IndexReport, folder: Path) -> Path:
    """Write the index report (with every failed item) as JSON, whole or not at all."""
    return write_json(folder / f"{report.collection}-index-report.json", report.to_json())
