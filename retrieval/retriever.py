"""Stage 1: encoders + index -> candidates, in batches.

``Retriever.index_dataset`` streams a dataset into a collection and resumes a killed
run (points already stored are skipped, ids are stable so nothing is written twice);
``Retriever.search`` encodes query listings and asks the index for K candidates.
What an index run reports lives in ``retrieval.index_run``; how encoded queries become
the index's requests (hybrid, multivector rescoring, each vector's own answer) in
``retrieval.query_plan``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from retrieval.atomic import DamagedFile
from retrieval.encoders.base import Encoded, Encoder, Vector, build_encoder
from retrieval.encoders.folders import check_folders
from retrieval.errors import UsageError
from retrieval.failure_log import FailureLog
from retrieval.fingerprint import fingerprint
from retrieval.index.base import PointBatch, SearchRequest, VectorIndex, point_id
from retrieval.index_run import IndexReport, Journal, StoredBatch, remove_missing, store_lost
from retrieval.query_plan import BatchHits, build_requests, search_lists
from retrieval.types import Hit, Product, Progress, ProgressFactory

log = logging.getLogger(__name__)
T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class Retriever:
    """A set of encoders writing to and querying one collection."""

    def __init__(self, encoders: Sequence[Encoder], index: VectorIndex, collection: str) -> None:
        if not encoders:
            raise UsageError("no encoder given; pass --encoder, e.g. --encoder text")
        self.index = index
        self.collection = collection
        self.base = [e for e in encoders if not getattr(e, "derived", False)]
        self.derived = [e for e in encoders if getattr(e, "derived", False)]
        base_specs = [v for e in self.base for v in e.vectors()]
        for enc in self.derived:
            enc.bind(base_specs)
        self.specs = base_specs + [v for e in self.derived for v in e.vectors()]
        names = [v.name for v in self.specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UsageError(f"two encoders fill the vector(s) {dupes}; rename one with name=...")

    @classmethod
    def from_specs(cls, specs: Sequence[str], index: VectorIndex, collection: str) -> Retriever:
        """Build the encoders named by spec strings; a local encoder folder the existing
        collection was indexed with and that is gone is named in one line, with the
        command that rebuilds it where recorded (``retrieval.encoders.folders``)."""
        try:
            info = index.info(collection)
        except DamagedFile:  # a damaged collection is about to be recreated, or says so later
            info = None
        if info is not None:
            check_folders(specs, info.meta, collection)
        return cls([build_encoder(s) for s in specs], index, collection)

    @classmethod
    def for_collection(cls, index: VectorIndex, collection: str) -> Retriever:
        """Rebuild the encoders a collection was indexed with (from its metadata)."""
        info = index.info(collection)
        if info is None:
            known = ", ".join(index.collections()) or "none"
            raise UsageError(
                f"no collection {collection!r} (have: {known}); run `search index` first"
            )
        specs = info.meta.get("encoders") or []
        check_folders(specs, info.meta, collection)
        return cls([build_encoder(s) for s in specs], index, collection)

    @property
    def encoder_specs(self) -> list[str]:
        return [e.spec for e in self.base + self.derived]

    def vector_names(self) -> list[str]:
        return [v.name for v in self.specs]

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        """Every vector of every encoder for one batch, plus the failures met."""
        vectors: dict[str, list[Vector | None]] = {}
        failures: dict[str, str] = {}
        for enc in self.base:
            out = enc.encode(products, query=query)
            vectors.update(out.vectors)
            failures.update(out.failures)
        for enc in self.derived:
            vectors[enc.name] = enc.combine(vectors, len(products))
        return Encoded(vectors, failures)

    # -- indexing ----------------------------------------------------------------------
    def index_dataset(
        self,
        products: Iterable[Product],
        dataset: str,
        *,
        batch_size: int = 256,
        recreate: bool = False,
        progress: Progress | None = None,
        extra_meta: dict[str, Any] | None = None,
        failures_log: Path | None = None,
        complete: bool = True,
        wait_progress: ProgressFactory | None = None,
    ) -> IndexReport:
        """Encode and upsert every product; skip points a previous run already stored.

        ``failures_log`` (a JSON-lines file) records each batch's unreadable items before
        the batch is stored, so a run killed and resumed reports the same failures as a
        clean run: items skipped as already stored bring their logged failures back.
        A listing stored from other data than the source has now (``fingerprint``) is
        encoded again; with ``complete`` (``products`` is the whole source), the dataset's
        points the source no longer has are removed. ``wait_progress`` shows the index
        build at the end (``VectorIndex.optimize``)."""
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {batch_size}")
        start = time.perf_counter()
        meta = {"encoders": self.encoder_specs, "dataset": dataset, **(extra_meta or {})}
        self.index.create(self.collection, self.specs, meta, recreate=recreate)
        prepare = getattr(self.index, "prepare_load", None)  # server: HNSW waits for the end
        if prepare is not None:
            prepare(self.collection)
        reserve = getattr(self.index, "reserve", None)  # edge: disk room for mapped files
        if reserve is not None and hasattr(products, "__len__"):
            reserve(self.collection, len(products))
        journal = FailureLog(failures_log, fresh=recreate) if failures_log else None
        report = IndexReport(self.collection, dataset)
        seen_ids: set[str] = set()
        for batch in batched(products, batch_size):
            report.seen += len(batch)
            fresh = []
            for p in batch:
                if p.id in seen_ids:
                    report.duplicates += 1
                    continue
                seen_ids.add(p.id)
                fresh.append(p)
            room = (lambda n: reserve(self.collection, n)) if reserve is not None else None
            stored = self.store_batch(fresh, dataset, journal, before_upsert=room)
            report.skipped_existing += stored.skipped
            report.written += stored.written
            report.changed += stored.changed
            report.failures.update(stored.failures)
            log.info(
                "stored %d, skipped %d of %d seen",
                report.written,
                report.skipped_existing,
                report.seen,
            )
            if progress:
                progress(len(batch))
        if report.duplicates:
            log.warning("%d duplicate product ids were indexed once", report.duplicates)
        if complete:  # the whole source was read: what it no longer has goes
            report.removed = self.remove_missing(dataset, {point_id(dataset, i) for i in seen_ids})
        self.index.optimize(self.collection, progress=wait_progress)
        # server: nothing lost in flight; a source read again stores what a fault lost
        if isinstance(products, Sequence):
            store = functools.partial(self.store_batch, dataset=dataset, journal=journal)
            report.rewritten = store_lost(
                self.index, self.collection, dataset, products, store, batch_size
            )
        elif (verify := getattr(self.index, "verify_count", None)) is not None:
            verify(self.collection, dataset, len(seen_ids))
        report.seconds = time.perf_counter() - start
        return report

    def store_batch(
        self,
        products: Sequence[Product],
        dataset: str,
        journal: Journal | None = None,
        *,
        before_upsert: Callable[[int], None] | None = None,
    ) -> StoredBatch:
        """Encode and upsert the products of one batch not stored yet (one process, or a
        Ray worker). The journal's failures of the skipped ones come back; the new ones
        go to the journal before the batch is stored, so a resumed run finds them."""
        ids = [point_id(dataset, p.id) for p in products]
        stamps = self.index.stamps(self.collection, ids)
        fps = [fingerprint(p, dataset) for p in products]
        # a point is kept when it was made from the listing as it is now
        todo = [(pid, p, fp) for pid, p, fp in zip(ids, products, fps) if stamps.get(pid) != fp]
        done = [p.id for pid, p, fp in zip(ids, products, fps) if stamps.get(pid) == fp]
        failures = dict(journal.failures_of(done)) if journal is not None and done else {}
        if todo:
            items = [p for _, p, _ in todo]
            enc = self.encode(items)
            failures.update(enc.failures)
            if journal is not None and enc.failures:
                journal.append(enc.failures)
            if before_upsert is not None:
                before_upsert(len(todo))
            payloads = [p.payload(dataset) | {"fp": fp} for _, p, fp in todo]
            ids = [pid for pid, _, _ in todo]
            self.index.upsert(self.collection, PointBatch(ids, enc.vectors, payloads))
        changed = sum(pid in stamps for pid, _, _ in todo)
        return StoredBatch(len(todo), len(done), failures, changed)

    def remove_missing(self, dataset: str, ids: set[str]) -> int:
        """Delete the dataset's points the source no longer has (``remove_missing``)."""
        return remove_missing(self.index, self.collection, dataset, ids)

    # -- searching ---------------------------------------------------------------------
    def requests(
        self,
        encoded: Encoded,
        n: int,
        query: SearchRequest,
        filters: Sequence[dict[str, str] | None] | None = None,
    ) -> list[SearchRequest | None]:
        """One request per encoded query (``query_plan.build_requests``) over this
        collection's vectors."""
        return build_requests(self.specs, encoded, n, query, filters)

    def search(
        self,
        queries: Sequence[Product],
        *,
        batch_size: int = 128,
        progress: Progress | None = None,
        **query: Any,
    ) -> list[list[Hit]]:
        """K candidates per query listing, ``batch_size`` queries at a time; ``query`` is
        what ``search_batch`` takes (using, k, hybrid, fusion, exclude_self, payload) and
        ``filters``, one per query."""
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, not {batch_size}")
        filters = query.pop("filters", None)
        results: list[list[Hit]] = []
        for start in range(0, len(queries), batch_size):
            batch = list(queries[start : start + batch_size])
            flts = filters[start : start + batch_size] if filters is not None else None
            results += self.search_batch(batch, filters=flts, **query).hits
            if progress:
                progress(len(batch))
        return results

    def search_batch(
        self,
        batch: Sequence[Product],
        *,
        using: str,
        k: int = 10,
        hybrid: Sequence[str] = (),
        fusion: str = "rrf",
        filters: Sequence[dict[str, str] | None] | None = None,
        exclude_self: bool = False,
        payload: bool | Sequence[str] = True,
        lists: bool = False,
    ) -> BatchHits:
        """K candidates per query of one batch (``exclude_self`` drops the query's own
        point), with the queries it could not search and what encoding and search took;
        ``lists`` keeps each query's answer per searched vector too (``BatchHits.lists``)."""
        if k < 1:
            raise UsageError("k must be at least 1")
        limit = k + 1 if exclude_self else k
        start = time.perf_counter()
        enc = self.encode(list(batch), query=True)
        query = SearchRequest({}, using, limit, tuple(hybrid), fusion, payload=payload)
        reqs = self.requests(enc, len(batch), query, filters)
        searched = time.perf_counter()
        sent = [r for r in reqs if r is not None]
        per_vector: list[dict[str, list[Hit]] | None] = []
        if lists:
            fused, per_vector = search_lists(self.index, self.collection, sent)
        else:
            fused = self.index.search(self.collection, sent)
        answers, by_vector = iter(fused), iter(per_vector)
        index_s = time.perf_counter() - searched
        out = BatchHits([], [], dict(enc.failures), searched - start, index_s)
        for q, req in zip(batch, reqs):
            if req is None:
                out.missing.append(q.id)
            if lists:
                out.lists.append(next(by_vector) if req is not None else {})
            hits = next(answers) if req is not None else []
            # in the back-ends' own order (rank_fusion.ranked_hits: tie groups by id)
            if exclude_self:
                hits = [h for h in hits if h.id != q.id]
            out.hits.append(hits[:k])
        return out
