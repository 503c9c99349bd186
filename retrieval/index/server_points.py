"""The server back-end's point I/O (``ServerIndex`` adds the connection and the
collections): batches upserted on several parallel streams without waiting for each to
be applied (``flush`` waits for them all and raises the first failure), points read back
by id in pages and scrolled by dataset at the index's read consistency, deletes that
never overtake a write still in flight, and search requests built in qdrant-client's
models (one vector, a hybrid prefetch fused by RRF or DBSF, or a multivector rescore).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from retrieval.encoders.base import SparseVec, Vector
from retrieval.errors import SearchError
from retrieval.index.base import HYBRID, IndexConfig, PointBatch, SearchRequest
from retrieval.index.qdrant import QdrantIndex, payload_filter, search_params
from retrieval.index.rank_fusion import prefetch_limit

FETCH_BATCH = 512  # point ids per retrieve call
SETTLE_S = 10.0  # how long a short count after a load is asked again (replicas catching up)


class ServerPoints(QdrantIndex):
    """Points in and out of a Qdrant server's collections, over the client, models,
    config and read consistency ``ServerIndex`` sets up; every client call goes through
    ``_call`` (its connection's one-line errors)."""

    client: Any
    models: Any
    config: IndexConfig
    _consistency: Any
    _pool: ThreadPoolExecutor | None
    _pending: list[Future]
    where: str

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _vector(self, vec: Vector) -> Any:
        if isinstance(vec, SparseVec):
            return self.models.SparseVector(
                indices=vec.indices.tolist(), values=vec.values.tolist()
            )
        return vec.tolist()

    def upsert(self, name: str, points: PointBatch) -> None:
        if not len(points):
            return
        streams = self.config.upload_streams
        if streams == 1:
            self._call(self._send, name, points, True)
            return
        # several batches in flight; each is acknowledged once in the write-ahead log and
        # applied in order; optimize() (or close) waits for all, and the load's count check
        # catches anything lost. The request is built in the stream's thread.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(streams, thread_name_prefix="qdrant-upsert")
        while len(self._pending) >= 2 * streams:
            done = self._pending.pop(0)
            done.result()
        self._pending.append(self._pool.submit(self._call, self._send, name, points, False))

    def _send(self, name: str, points: PointBatch, wait: bool) -> None:
        """One upsert: columns in a ``Batch`` when every point has every vector (cheaper to
        build and send), else one ``PointStruct`` per point without its missing vectors."""
        m = self.models
        if points.complete():
            batch = m.Batch(
                ids=list(points.ids),
                vectors={k: [self._vector(v) for v in col] for k, col in points.vectors.items()},
                payloads=list(points.payloads),
            )
            self.client.upsert(name, points=batch, wait=wait)
            return
        rows = [
            m.PointStruct(
                id=pid,
                vector={k: self._vector(v) for k, v in points.named(i).items()},
                payload=points.payloads[i],
            )
            for i, pid in enumerate(points.ids)
        ]
        self.client.upsert(name, points=rows, wait=wait)

    def _records(
        self, name: str, ids: Sequence[str], *, vectors: bool = False, payload: Any = False
    ) -> list[Any]:
        out: list[Any] = []
        ids = list(ids)
        for start in range(0, len(ids), FETCH_BATCH):
            out += self._call(
                self.client.retrieve,
                name,
                ids=ids[start : start + FETCH_BATCH],
                with_payload=payload,
                with_vectors=vectors,
                consistency=self._consistency,
            )
        return out

    def _scroll(self, name: str, dataset: str, offset: Any, limit: int) -> tuple[list[Any], Any]:
        m = self.models
        flt = m.Filter(must=[m.FieldCondition(key="dataset", match=m.MatchValue(value=dataset))])
        return self._call(
            self.client.scroll,
            name,
            scroll_filter=flt,
            limit=limit,
            offset=offset,
            with_payload=False,
            with_vectors=False,
            consistency=self._consistency,
        )

    def delete(self, name: str, ids: Sequence[str]) -> None:
        self.flush()  # a delete must not overtake a write still in flight
        if ids:
            selector = self.models.PointIdsList(points=list(ids))
            self._call(self.client.delete, name, points_selector=selector, wait=True)

    def _query(self, name: str, requests: list[SearchRequest]) -> list[list[Any]]:
        batch = [self._request(r) for r in requests]
        responses = self._call(
            self.client.query_batch_points, name, requests=batch, consistency=self._consistency
        )
        return [r.points for r in responses]

    def _request(self, req: SearchRequest) -> Any:
        m = self.models
        params = search_params(m, self.config, req.limit)
        flt = payload_filter(m, req.filter)
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
        pl = prefetch_limit(req)
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

    def count(self, name: str, dataset: str | None = None) -> int:
        """Points stored (exactly), optionally of one dataset only."""
        m = self.models
        flt = None
        if dataset is not None:
            flt = m.Filter(
                must=[m.FieldCondition(key="dataset", match=m.MatchValue(value=dataset))]
            )
        return self._call(self.client.count, name, count_filter=flt, exact=True).count

    def shortfall(self, name: str, dataset: str, expected: int, settle: float = SETTLE_S) -> int:
        """How many of the ``expected`` listings of ``dataset`` the collection lacks after
        a load. Batches go out without waiting to be applied, and a replica may still be
        applying the last ones, so a short count is asked again for ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while True:
            got = self.count(name, dataset)
            if got >= expected or time.monotonic() >= deadline:
                return max(0, expected - got)
            time.sleep(0.5)

    def verify_count(self, name: str, dataset: str, expected: int) -> None:
        """After a load: the collection holds every listing of ``dataset`` it was given."""
        short = self.shortfall(name, dataset, expected)
        if short:
            raise SearchError(
                f"collection {name!r} {self.where} holds {expected - short} of the {expected} "
                f"listings of {dataset!r} after the load; run the same command again to resume"
            )

    def flush(self) -> None:
        """Wait for every batch still being written; the first failure is raised."""
        pending, self._pending = self._pending, []
        error: BaseException | None = None
        for fut in pending:
            exc = fut.exception()
            error = error or exc
        if error is not None:
            raise error
