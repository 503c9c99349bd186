"""Which collection an evaluation reads, indexing it first when it is missing, partial or
stale (its points made from listings that have changed in the source since).

Without ``--collection``, a dataset's collection is the one named after the dataset
(what ``search index DATASET`` creates) when it holds this dataset and, if encoders
were asked for, was indexed with them; otherwise it is named by a hash of the dataset
path and the encoder specs (``collection_name``), so ablation cells that share an
encoder set share one collection, indexed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.types import Product, ProgressFactory
from search.config import DEFAULT_ENCODERS, AppConfig
from search.indexing import connect, index_dataset, reports_dir, stale_listings

log = logging.getLogger(__name__)


@dataclass
class CollectionChoice:
    """The collection used, what indexing it skipped, and notes for the report."""

    name: str
    items: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)  # what it is (to be) indexed with
    missing: str = ""  # why it must be indexed first ("missing", "partial (...)"); "" if not
    meta: dict[str, Any] = field(default_factory=dict)  # more metadata, if indexed here


def collection_name(dataset: str, source: str, encoders: Sequence[str]) -> str:
    """``<dataset>-<hash of the dataset path and encoder specs>``: stable across runs."""
    key = json.dumps([str(source), [str(e) for e in encoders]])
    return f"{dataset}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def open_collection(
    cfg: AppConfig,
    dataset: Dataset,
    dataset_path: str,
    products: Sequence[Product],
    fmt: str | None,
    collection: str | None,
    encoders: Sequence[str] | None,
    progress: ProgressFactory | None = None,
    check: Callable[[VectorIndex], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[VectorIndex, CollectionChoice]:
    """Pick the collection (see the module doc); index it if missing, resume it if
    partial, refresh it if stale; the index is left open for the job (the caller closes
    it): one open index per job, reopened only after indexing the collection first (an
    embedded store has one opener at a time). ``check(index)`` runs before the lookup;
    ``meta`` joins the collection's metadata if it is created here (e.g. ``rebuild``,
    ``retrieval.encoders.folders``).

    Encoders count as asked for when given here or configured other than the default."""
    index = connect(cfg)
    try:
        if check is not None:
            check(index)
        choice = find_collection(index, cfg, dataset, dataset_path, products, collection, encoders)
        choice.meta = dict(meta or {})
        if choice.missing:
            index.close()
            fill_collection(cfg, choice, dataset, dataset_path, products, fmt, progress)
            index = connect(cfg)
        else:
            fill_collection(cfg, choice, dataset, dataset_path, products, fmt, progress)
    except BaseException:
        index.close()
        raise
    return index, choice


def find_collection(
    index: VectorIndex,
    cfg: AppConfig,
    dataset: Dataset,
    dataset_path: str,
    products: Sequence[Product],
    collection: str | None,
    encoders: Sequence[str] | None,
) -> CollectionChoice:
    """The collection to use, looked up in an open index (nothing indexed here): its
    ``missing`` says whether ``fill_collection`` must index it first."""
    wanted = list(encoders or cfg.stage1.encoders)
    explicit = encoders is not None or list(cfg.stage1.encoders) != list(DEFAULT_ENCODERS)
    source = str(Path(dataset_path).resolve())
    name = collection
    if name is None:
        own = index.info(dataset.name)
        same = own is not None and own.meta.get("source") in (None, source)
        fits = own is not None and (not explicit or own.meta.get("encoders") == wanted)
        name = dataset.name if same and fits else collection_name(dataset.name, source, wanted)
    info = index.info(name)
    unique = len({p.id for p in products})
    if info is not None:
        stored = info.meta.get("encoders") or []
        if explicit and stored != wanted:
            raise UsageError(
                f"collection {name!r} was indexed with encoders {stored}, not {wanted}: "
                "drop --encoder or pick another --collection"
            )
        if info.meta.get("dataset") not in (None, dataset.name):
            raise UsageError(
                f"collection {name!r} holds dataset {info.meta['dataset']!r}, "
                f"not {dataset.name!r}; pick another --collection"
            )
        wanted = list(stored)
    missing = ""
    if info is None or info.points < unique:
        missing = "missing" if info is None else f"partial ({info.points} of {unique} listings)"
    else:  # points made from other listings than the source holds now are refreshed first
        changed, new, gone = stale_listings(index, name, dataset.name, products)
        if changed or new or gone:
            missing = f"stale ({changed} listings changed, {new} new, {gone} gone since indexed)"
    return CollectionChoice(name, encoders=wanted, missing=missing)


def fill_collection(
    cfg: AppConfig,
    choice: CollectionChoice,
    dataset: Dataset,
    dataset_path: str,
    products: Sequence[Product],
    fmt: str | None,
    progress: ProgressFactory | None = None,
) -> CollectionChoice:
    """Index the chosen collection if it is missing or partial (the caller holds no open
    index meanwhile: an embedded store has one opener at a time), and count what
    indexing skipped."""
    if choice.missing:
        log.info("collection %s %s: indexing %s", choice.name, choice.missing, dataset_path)
        choice.notes.append(f"collection {choice.name!r} was {choice.missing}: indexed by this run")
        run_cfg = replace(cfg, stage1=replace(cfg.stage1, encoders=choice.encoders))
        tick = (lambda total: progress("indexing", total or 0)) if progress else None
        index_dataset(
            run_cfg, dataset_path, fmt=fmt, collection=choice.name, progress=tick,
            meta=choice.meta, wait_progress=progress,
        )  # fmt: skip
        choice.missing = ""
    unique = len({p.id for p in products})
    listed = len(products) + dataset.skipped_duplicates  # rows, with those the reader dropped
    report = reports_dir(cfg) / f"{choice.name}-index-report.json"
    choice.items = _index_counts(report, listed, unique)
    return choice


def _index_counts(path: Path, listed: int, unique: int) -> dict[str, int]:
    """Listings of the dataset and what indexing skipped (from the index report, if any)."""
    items = {"items/listed": listed, "items/duplicate_ids": listed - unique}
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return items
    items["items/unreadable_images"] = int(report.get("failures", 0))
    return items
