"""What runs inside the Ray cluster for ``search index --ray`` (``search.indexing_ray``
drives it): the survey task, the read tasks that stream the reader's products as Arrow
blocks, the failure-log actor, and the encoder actor that writes to the Qdrant server.

Ray is imported inside the functions: this module loads without it.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError
from retrieval.failure_log import FailureLog
from retrieval.index.base import IndexConfig, point_id
from retrieval.index_run import remove_missing
from retrieval.retriever import Retriever, batched


def survey(dataset_path: str, fmt: str | None, failed_before: Sequence[str]) -> dict[str, Any]:
    """In a Ray task, not the driver: the product count, the rows the reader dropped, and
    which ids of an earlier report's failures are products of this dataset."""
    from retrieval.data import open_dataset

    dataset = open_dataset(dataset_path, format=fmt)
    listed, failed, total = set(failed_before), [], 0
    for product in dataset.products():
        total += 1
        if product.id in listed:
            failed.append(product.id)
    return {"total": total, "duplicates": dataset.skipped_duplicates, "failed": failed}


def prune(
    dataset_path: str, fmt: str | None, url: str, api_key: str | None, config: IndexConfig,
    collection: str,
) -> dict[str, Any]:  # fmt: skip
    """In a Ray task: remove the collection's points of listings the source no longer has
    (``removed``); a fault is ``error`` and ``exit_code``."""
    from retrieval.data import open_dataset
    from retrieval.index.server import ServerIndex

    dataset = open_dataset(dataset_path, format=fmt)
    ids = {point_id(dataset.name, p.id) for p in dataset.products()}
    try:  # a SearchError goes back as the row's error, as IndexWorker's do
        index = ServerIndex(url, api_key, config)
        try:
            removed = remove_missing(index, collection, dataset.name, ids)
        finally:
            index.close()
    except SearchError as exc:
        return {"removed": 0, "error": str(exc) or type(exc).__name__, "exit_code": exc.exit_code}
    return {"removed": removed, "error": "", "exit_code": 0}


def read_range(
    dataset_path: str, fmt: str | None, start: int, stop: int, block_rows: int
) -> Iterator[Any]:
    """Products ``start:stop`` of the dataset as Arrow blocks of ``block_rows`` pickled
    products (a read task; the products are decoded again in the worker)."""
    import pyarrow as pa

    from retrieval.data import open_dataset

    dataset = open_dataset(dataset_path, format=fmt)
    for chunk in batched(islice(dataset.products(), start, stop), block_rows):
        yield pa.table({"product": pa.array([pickle.dumps(p) for p in chunk], pa.binary())})


def ranges(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` consecutive, nearly equal ranges covering ``range(total)``."""
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return list(zip(bounds, bounds[1:]))


def _product_source_class() -> type:
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class ProductSource(Datasource):
        """The reader's products split into ranges, one read task each."""

        def __init__(self, dataset_path: str, fmt: str | None, total: int, rows: int) -> None:
            self.args = (dataset_path, fmt)
            self.total, self.rows = total, rows

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: Any = None, **_: Any):
            def read(start: int, stop: int) -> Callable[[], Iterator[Any]]:
                return lambda: read_range(*self.args, start, stop, self.rows)

            return [
                ReadTask(
                    read(a, b),
                    BlockMetadata(
                        num_rows=b - a, size_bytes=None, exec_stats=None, input_files=None
                    ),
                    per_task_row_limit=per_task_row_limit,
                )
                for a, b in ranges(self.total, parallelism)
            ]

    return ProductSource


def product_source(dataset_path: str, fmt: str | None, total: int, rows: int) -> Any:
    """A Ray Datasource of the dataset's products, ``rows`` per block."""
    return _product_source_class()(dataset_path, fmt, total, rows)


class Journal:
    """The run's failure log, kept by one actor on the driver's node: workers append a
    batch's unreadable items before they store the batch."""

    def __init__(self, path: str, fresh: bool) -> None:
        self.log = FailureLog(Path(path), fresh=fresh)

    def ready(self) -> bool:
        return True

    def append(self, failures: dict[str, str]) -> None:
        self.log.append(failures)

    def failures_of(self, ids: list[str]) -> dict[str, str]:
        return self.log.failures_of(ids)


class IndexWorker:
    """One actor of the pool: the encoders, loaded once, and a client of the server."""

    def __init__(
        self,
        specs: list[str],
        url: str,
        api_key: str | None,
        config: IndexConfig,
        collection: str,
        dataset: str,
        journal: Any,
    ) -> None:
        from retrieval.index.server import ServerIndex

        self.collection, self.dataset, self.journal = collection, dataset, journal
        self.error: SearchError | None = None
        try:
            self.index = ServerIndex(url, api_key, config)
            self.retriever = Retriever.from_specs(specs, self.index, collection)
        except SearchError as exc:  # told to the driver with the first batch
            self.error = exc

    def __call__(self, batch: Any) -> Any:
        """Store the batch's products not stored yet; one summary row back to the driver.

        A SearchError (the server gone, a model that will not load) comes back as the
        row's ``error``: Ray would hand the driver only its traceback as text."""
        import pyarrow as pa

        row = {"seen": batch.num_rows, "written": 0, "skipped": 0, "changed": 0, "failures": "{}"}
        try:
            if self.error is not None:
                raise self.error
            row.update(self._store(batch))
            row["error"], row["exit_code"] = "", 0
        except SearchError as exc:
            row["error"], row["exit_code"] = str(exc) or type(exc).__name__, exc.exit_code
        return pa.table({k: [v] for k, v in row.items()})

    def _store(self, batch: Any) -> dict[str, Any]:
        products = [pickle.loads(b) for b in batch.column("product").to_pylist()]
        stored = self.retriever.store_batch(products, self.dataset, RemoteJournal(self.journal))
        self.index.flush()  # the batch is stored before the driver counts it
        return {
            "written": stored.written,
            "skipped": stored.skipped,
            "changed": stored.changed,
            "failures": json.dumps(stored.failures),
        }


class RemoteJournal:
    """The ``Journal`` actor seen from a worker, as ``Retriever.store_batch`` uses one."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def failures_of(self, ids: Any) -> dict[str, str]:
        import ray

        return ray.get(self.actor.failures_of.remote(list(ids)))

    def append(self, failures: dict[str, str]) -> None:
        import ray

        ray.get(self.actor.append.remote(failures))
