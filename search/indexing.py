"""Stage-1 jobs of the application: connect to the store, index a dataset, list collections."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable
from pathlib import Path
from typing import Any

from retrieval.atomic import read_json
from retrieval.errors import SearchError, UsageError
from retrieval.fingerprint import fingerprint
from retrieval.index import VectorIndex, open_index
from retrieval.index.base import check_collection_name, point_id
from retrieval.index_run import IndexReport, write_report
from retrieval.retriever import Retriever
from retrieval.types import Product, ProgressFactory
from search.config import AppConfig

log = logging.getLogger(__name__)
STAMP_BATCH = 1000  # point ids per fingerprint look-up


def connect(cfg: AppConfig) -> VectorIndex:
    """Open the configured back-end."""
    return open_index(
        cfg.store.backend,
        data_dir=cfg.store.data_dir,
        url=cfg.store.url,
        api_key=cfg.store.api_key,
        config=cfg.index,
    )


def reports_dir(cfg: AppConfig) -> Path:
    return cfg.store.data_dir / "reports"


def index_dataset(
    cfg: AppConfig,
    dataset_path: str,
    *,
    fmt: str | None = None,
    collection: str | None = None,
    recreate: bool = False,
    progress: Callable[[int | None], Callable[[int], None]] | None = None,
    meta: dict[str, Any] | None = None,
    wait_progress: ProgressFactory | None = None,
) -> tuple[IndexReport, Path]:
    """Index a dataset into a collection; returns the run's report and its path.

    ``progress(total)`` returns the per-batch callback (the CLI passes a rich bar);
    ``meta`` joins the metadata of a collection created here; ``wait_progress`` shows
    the index build at the end (a server's wait for green)."""
    from retrieval.data import open_dataset

    dataset = open_dataset(dataset_path, format=fmt)
    name = check_collection_name(collection or dataset.name)
    index = connect(cfg)
    try:
        retriever = Retriever.from_specs(cfg.stage1.encoders, index, name)
        products = list(dataset.products())
        if not products:
            raise UsageError(f"dataset {dataset_path} has no products")
        report_path = reports_dir(cfg) / f"{name}-index-report.json"
        previous = previous_failures(report_path, {p.id for p in products}) if not recreate else {}
        tick = progress(len(products)) if progress else None
        report = retriever.index_dataset(
            products,
            dataset.name,
            batch_size=cfg.stage1.batch_size,
            recreate=recreate,
            progress=tick,
            extra_meta={
                "format": dataset.format,
                "source": str(Path(dataset_path).resolve()),
                **(meta or {}),
            },
            failures_log=reports_dir(cfg) / f"{name}-index-failures.jsonl",
            wait_progress=wait_progress,
        )
        report.failures = {**previous, **report.failures}
        report.duplicates += dataset.skipped_duplicates  # rows the reader already dropped
        return report, write_report(report, reports_dir(cfg))
    finally:
        index.close()


def previous_failures(path: Path, ids: Container[str] | None = None) -> dict[str, str]:
    """Failures listed by an earlier run of the same collection, of the items in ``ids``
    (None: all of them); a damaged report is ignored (the failure log has them)."""
    try:
        data = read_json(path, "it is rewritten by this run")
        items = data.get("failed_items", {})
    except (OSError, SearchError):
        return {}
    if not isinstance(items, dict):
        return {}
    return {str(k): str(v) for k, v in items.items() if ids is None or str(k) in ids}


def stale_listings(
    index: VectorIndex, collection: str, dataset: str, products: Iterable[Product]
) -> tuple[int, int, int]:
    """How far a collection is from its source: listings changed since they were stored
    (their ``fingerprint`` differs), listings not stored, and points the source no longer has."""
    want = {point_id(dataset, p.id): fingerprint(p, dataset) for p in products}
    changed = new = 0
    keys = list(want)
    for start in range(0, len(keys), STAMP_BATCH):
        chunk = keys[start : start + STAMP_BATCH]
        stamps = index.stamps(collection, chunk)
        new += sum(pid not in stamps for pid in chunk)
        changed += sum(pid in stamps and stamps[pid] != want[pid] for pid in chunk)
    gone = sum(pid not in want for page in index.scan_ids(collection, dataset) for pid in page)
    return changed, new, gone


def pick_collection(index: VectorIndex, collection: str | None) -> str:
    """The named collection, or the only one there is."""
    if collection:
        return collection
    names = index.collections()
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("no collection yet; run `search index DATASET` first")
    raise UsageError(f"several collections ({', '.join(names)}); pick one with --collection")


def list_collections(cfg: AppConfig) -> list[dict[str, Any]]:
    """Each collection with its point count, vectors and encoders."""
    index = connect(cfg)
    try:
        out = []
        for name in index.collections():
            try:
                info = index.info(name)
            except SearchError as exc:  # locked or damaged: shown as such, the others listed
                log.warning("%s", exc)
                out.append(
                    {
                        "name": name,
                        "points": None,
                        "vectors": {},
                        "encoders": [],
                        "dataset": None,
                        "error": str(exc),
                    }
                )
                continue
            if info is None:
                continue
            out.append(
                {
                    "name": name,
                    "points": info.points,
                    "vectors": {v.name: (v.size if v.size else "sparse") for v in info.vectors},
                    "encoders": info.meta.get("encoders", []),
                    "dataset": info.meta.get("dataset"),
                }
            )
        return out
    finally:
        index.close()
