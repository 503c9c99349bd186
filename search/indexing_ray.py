"""``search index --ray``: the index job scaled out on Ray Data.

The catalogue is read in blocks by Ray read tasks (each opens the dataset and streams its
own range of products; the driver never holds the catalogue, though today's readers parse
their whole file when a task opens them), the encoders run as an actor pool (``map_batches`` with a class:
models load once per worker, ``num_gpus`` per worker, images decoded in the workers), and
every worker writes its batches straight to the Qdrant server with the point ids of the
single-process path (``point_id``): points already stored are skipped, so a re-run or a
task Ray retries after a worker died never duplicates. The driver creates the collection,
sums the workers' per-batch counts into the same ``IndexReport``, and optimizes at the end.

Unreadable items are appended to the run's failure log by a small actor pinned to the
driver's node before their batch is stored (as ``Retriever.index_dataset`` does), so a run
killed and resumed reports the same failures as a clean one.

The embedded (edge) index is one process per shard and cannot be written from workers:
``--ray`` needs a Qdrant server (``--qdrant-url``). What runs inside the cluster lives in
``search.indexing_ray_tasks``, joining the cluster in ``search.ray_cluster``; Ray is imported
inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError, UsageError
from retrieval.index.base import check_collection_name
from retrieval.index_run import IndexReport, write_report
from retrieval.retriever import Retriever
from retrieval.types import ProgressFactory
from search.config import AppConfig
from search.indexing import connect, previous_failures, reports_dir
from search.indexing_ray_tasks import IndexWorker, Journal, product_source, prune, survey
from search.ray_cluster import connect_ray, import_ray

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # restarts of a dead worker, and retries of the batch it held
READ_TASKS_PER_WORKER = 2  # each read task re-opens the dataset: keep them few


def index_dataset_ray(
    cfg: AppConfig,
    dataset_path: str,
    *,
    fmt: str | None = None,
    collection: str | None = None,
    recreate: bool = False,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
    wait_progress: ProgressFactory | None = None,
) -> tuple[IndexReport, Path]:
    """Index a dataset into a server collection with ``workers`` Ray actors; returns the
    run's report and its path, as ``search.indexing.index_dataset`` does.

    ``address``: a Ray cluster (``HOST:PORT`` or ``auto``); None (and no ``RAY_ADDRESS``)
    or ``local`` starts a local one; a process already connected to Ray uses that.
    ``wait_progress`` shows the wait for the collection to turn green at the end."""
    ray = import_ray()
    if cfg.store.backend != "server":
        raise UsageError(
            "--ray writes from the workers to a Qdrant server: pass --qdrant-url URL "
            "(the embedded index is one process)"
        )
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    if not 0 <= gpus_per_worker <= 64:
        raise UsageError(f"--gpus-per-worker must be in [0, 64], not {gpus_per_worker}")
    from retrieval.data import open_dataset

    start = time.perf_counter()
    dataset = open_dataset(dataset_path, format=fmt)
    # the tasks open it again, wherever Ray runs them (``ARCHIVE.zip::FILE.csv`` kept)
    where = os.path.abspath(os.path.expanduser(dataset_path))
    name = check_collection_name(collection or dataset.name)
    index = connect(cfg)
    owns_ray = False
    try:
        retriever = Retriever.from_specs(cfg.stage1.encoders, index, name)
        report_path = reports_dir(cfg) / f"{name}-index-report.json"
        owns_ray = connect_ray(ray, address)
        counted = ray.get(
            ray.remote(survey).remote(
                where,
                fmt,
                [] if recreate else sorted(previous_failures(report_path)),
            )
        )
        if not counted["total"]:
            raise UsageError(f"dataset {dataset_path} has no products")
        meta = {
            "encoders": retriever.encoder_specs,
            "dataset": dataset.name,
            "format": dataset.format,
            "source": str(Path(dataset_path).resolve()),
        }
        index.create(name, retriever.specs, meta, recreate=recreate)
        index.prepare_load(name)  # no HNSW build while the workers write
        report = IndexReport(name, dataset.name)
        for row in _run(
            ray,
            cfg,
            index,
            where,
            fmt,
            name=name,
            dataset=dataset.name,
            total=counted["total"],
            workers=workers,
            gpus=gpus_per_worker,
            journal_path=reports_dir(cfg) / f"{name}-index-failures.jsonl",
            fresh=recreate,
            progress=progress(counted["total"]) if progress else None,
        ):
            if row["error"]:  # a worker met a fault with a clear fix: stop, say it once
                err = SearchError(row["error"].strip().splitlines()[0])
                err.exit_code = row["exit_code"]
                raise err
            report.seen += row["seen"]
            report.written += row["written"]
            report.changed += row.get("changed", 0)
            report.skipped_existing += row["skipped"]
            report.failures.update(json.loads(row["failures"]))
            log.info(  # the single-process path's line: totals so far
                "stored %d, skipped %d of %d seen",
                report.written,
                report.skipped_existing,
                report.seen,
            )
        if report.seen != counted["total"]:  # a lost block would be a bug, never a silent gap
            raise SearchError(
                f"the Ray run saw {report.seen} of {counted['total']} products; re-run to resume"
            )
        api_key = cfg.store.api_key or os.environ.get("QDRANT_API_KEY") or None
        # what the source no longer has goes, as without Ray; a fault comes back as a row
        pruned = ray.get(ray.remote(prune).remote(where, fmt, index.url, api_key, cfg.index, name))
        if pruned["error"]:
            err = SearchError(pruned["error"].strip().splitlines()[0])
            err.exit_code = pruned["exit_code"]
            raise err
        report.removed = pruned["removed"]
        index.optimize(name, progress=wait_progress)  # HNSW on again, waited green
        index.verify_count(name, dataset.name, counted["total"])
        previous = {} if recreate else previous_failures(report_path, set(counted["failed"]))
        report.failures = {**previous, **report.failures}
        report.duplicates += counted["duplicates"]  # rows the reader dropped
        report.seconds = time.perf_counter() - start
        return report, write_report(report, reports_dir(cfg))
    finally:
        index.close()
        if owns_ray:
            ray.shutdown()


def _run(
    ray: Any,
    cfg: AppConfig,
    index: Any,
    dataset_path: str,
    fmt: str | None,
    *,
    name: str,
    dataset: str,
    total: int,
    workers: int,
    gpus: float,
    journal_path: Path,
    fresh: bool,
    progress: Callable[[int], None] | None,
) -> Iterator[dict[str, Any]]:
    """Stream the catalogue through the worker pool; one summary row per stored batch."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    batch_size = cfg.stage1.batch_size
    per_worker, read_cpus = _shares(ray, workers, gpus)
    here = ray.get_runtime_context().get_node_id()
    journal = (
        ray.remote(Journal)
        .options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
        .remote(str(journal_path), fresh)
    )
    ray.get(journal.ready.remote())
    blocks = min(math.ceil(total / batch_size), READ_TASKS_PER_WORKER * workers)
    source = product_source(dataset_path, fmt, total, batch_size)
    products = ray.data.read_datasource(source, override_num_blocks=blocks, num_cpus=read_cpus)
    with warnings.catch_warnings():
        # bounded restarts still pass as remote args (deprecated by Ray 2.60, not replaced)
        warnings.simplefilter("ignore", DeprecationWarning)
        out = _pool(products, cfg, index, name, dataset, journal, workers, per_worker, gpus)
    for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            yield row
            if progress:
                progress(row["seen"])


def _shares(ray: Any, workers: int, gpus: float) -> tuple[float, float]:
    """The CPUs of one worker and of one read task: on a small machine
    the workers share what the read tasks leave, so reading never starves. Too few GPUs
    for the pool is one line, not a run that waits for ever."""
    have = ray.cluster_resources()
    cpus, gpu_count = float(have.get("CPU", 0.0)), float(have.get("GPU", 0.0))
    if gpus and gpus * workers > gpu_count + 1e-9:
        raise UsageError(
            f"--workers {workers} x --gpus-per-worker {gpus:g} needs {gpus * workers:g} GPUs; "
            f"the Ray cluster has {gpu_count:g}"
        )
    if cpus <= 0:
        raise UsageError("the Ray cluster has no CPUs for the read tasks and workers")
    read = min(1.0, cpus / 2)
    return min(1.0, (cpus - read) / workers), read


def _pool(
    products: Any,
    cfg: AppConfig,
    index: Any,
    name: str,
    dataset: str,
    journal: Any,
    workers: int,
    per_worker: float,
    gpus: float,
) -> Any:
    """The encoder actor pool over the product blocks (Ray Data ``map_batches``)."""
    from ray.data import ActorPoolStrategy

    return products.map_batches(
        IndexWorker,
        fn_constructor_kwargs={
            "specs": list(cfg.stage1.encoders),
            "url": index.url,
            "api_key": cfg.store.api_key or os.environ.get("QDRANT_API_KEY") or None,
            "config": cfg.index,
            "collection": name,
            "dataset": dataset,
            "journal": journal,
        },
        batch_size=cfg.stage1.batch_size,
        batch_format="pyarrow",
        # two batches per worker: one encoding, one queued; a driver that dies leaves
        # each worker at most these to finish (they store what they hold, no duplicates)
        compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=2),
        num_cpus=per_worker,
        num_gpus=gpus or None,
        max_restarts=MAX_RETRIES,
        max_task_retries=MAX_RETRIES,
    )
