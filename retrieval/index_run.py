"""What one index run reports and leaves behind: ``IndexReport`` (counts, failures,
seconds; written as JSON beside the collection by ``write_report``), what storing one
batch did (``StoredBatch``), the journal unreadable items go to as they are met
(``Journal``: a ``FailureLog`` or a Ray actor holding one), and the removal of the
listings a source no longer has (``remove_missing``). ``Retriever.index_dataset`` and the
Ray workers (``search.indexing_ray_tasks``) write through them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from retrieval.atomic import write_json
from retrieval.index.base import VectorIndex

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


def write_report(report: IndexReport, folder: Path) -> Path:
    """Write the index report (with every failed item) as JSON, whole or not at all."""
    return write_json(folder / f"{report.collection}-index-report.json", report.to_json())
