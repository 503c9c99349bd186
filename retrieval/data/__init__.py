"""Dataset readers and the one entry point that picks the right one for a path.

| format | what it reads |
| --- | --- |
| ``shopee`` | a folder or zip with ``train.csv`` / ``test.csv`` and ``*_images/`` |
| ``query-gallery`` | a folder with ``gallery.jsonl`` and ``queries.jsonl`` |
| ``catalog`` | one ``.jsonl`` / ``.json`` / ``.csv`` file with id, title, image, group |

A Shopee folder or zip reads ``train.csv`` (else ``test.csv``); one CSV file of it is
named by its path (``shopee/test.csv``) or, inside a zip, ``shopee.zip::test.csv``.
"""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset
from retrieval.data.catalog import SUFFIXES, CatalogDataset
from retrieval.data.images import ZIP_ERRORS
from retrieval.data.query_gallery import GALLERY, QUERIES, QueryGalleryDataset
from retrieval.data.records import absolute
from retrieval.data.shopee import CSV_FILES, ShopeeDataset, zip_prefix
from retrieval.errors import UsageError, unknown_name

FORMATS: dict[str, type[Dataset]] = {
    "shopee": ShopeeDataset,
    "query-gallery": QueryGalleryDataset,
    "catalog": CatalogDataset,
}

MEMBER = "::"  # ARCHIVE.zip::FILE.csv names one CSV file inside a Shopee zip

__all__ = [
    "FORMATS",
    "CatalogDataset",
    "Dataset",
    "QueryGalleryDataset",
    "ShopeeDataset",
    "detect_format",
    "open_dataset",
]


def zip_member(path: str | Path) -> tuple[str, str | None]:
    """``("shopee.zip", "test.csv")`` for ``shopee.zip::test.csv``; else ``(path, None)``."""
    text = str(path)
    archive, sep, member = text.rpartition(MEMBER)
    if sep and member and archive.lower().endswith(".zip"):
        return archive, member
    return text, None


def detect_format(path: str | Path) -> str | None:
    """The format of a dataset path, or ``None`` when nothing tells."""
    path, member = zip_member(path)
    p = absolute(path)
    if member is not None:
        return "shopee" if p.is_file() and detect_format(p) == "shopee" else None
    if p.is_dir():
        if (p / GALLERY).is_file() and (p / QUERIES).is_file():
            return "query-gallery"
        if any((p / name).is_file() for name in CSV_FILES):
            return "shopee"
        return None
    suffix = p.suffix.lower()
    if suffix == ".zip":
        try:
            with zipfile.ZipFile(p) as zf:
                names = set(zf.namelist())
        except (OSError, *ZIP_ERRORS):
            return None
        prefix = zip_prefix(names)
        return "shopee" if any(prefix + name in names for name in CSV_FILES) else None
    if suffix == ".csv" and _is_shopee_csv(p):
        return "shopee"
    if suffix in SUFFIXES:
        return "catalog"
    return None


def _is_shopee_csv(path: Path) -> bool:
    """A CSV file whose header is Shopee's (``posting_id`` ... ``title``)."""
    try:
        with path.open("rb") as handle:
            header = handle.readline(65536).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    columns = {c.strip().strip('"') for c in header.split(",")}
    return {"posting_id", "image", "title"} <= columns


def open_dataset(path: str | Path, format: str | None = None, **kwargs: Any) -> Dataset:
    """Open a dataset, detecting its format unless ``format`` names one.

    ``kwargs`` go to the reader (``seed`` for all; ``csv`` for shopee); a path
    ``ARCHIVE.zip::FILE.csv`` reads that CSV file of a Shopee zip."""
    archive, member = zip_member(path)
    p = absolute(archive)
    if not p.exists():
        raise UsageError(f"dataset not found: {archive}")
    if member is not None:
        if format not in (None, "shopee"):
            raise UsageError(f"{path}: a CSV file inside a zip is read as shopee, not {format}")
        if detect_format(p) != "shopee":
            raise UsageError(f"{archive}: not a Shopee zip (no train.csv or test.csv inside)")
        format = "shopee"
        kwargs = {**kwargs, "csv": member}
    if format is None:
        format = detect_format(p)
        if format is None:
            raise UsageError(
                f"cannot tell the format of {path}: pass --format ({', '.join(FORMATS)})"
            )
    elif format not in FORMATS:
        raise unknown_name("dataset format", format, list(FORMATS))
    reader = FORMATS[format]
    try:
        inspect.signature(reader).bind(p, **kwargs)
    except TypeError as exc:
        raise UsageError(f"bad option for the {format} reader: {exc}") from exc
    return reader(p, **kwargs)
