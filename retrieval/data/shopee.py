"""The Kaggle "Shopee - Price Match Guarantee" layout, as a folder or as the competition zip.

``train.csv`` (posting_id, image, image_phash, title, label_group) with its pictures in
``train_images/``; ``test.csv`` (no label_group) with ``test_images/``. Groups are split
deterministically into train / valid / test; unlabelled rows are indexed, never queried.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from retrieval.data.base import GroupedCatalogue, split_of_group
from retrieval.data.images import ZIP_ERRORS, zip_ref
from retrieval.data.records import (
    csv_rows,
    dataset_path,
    decode_text,
    optional_text,
    product_id,
    read_bytes,
)
from retrieval.errors import UsageError
from retrieval.types import Product

logger = logging.getLogger(__name__)

CSV_FILES = ("train.csv", "test.csv")
UNLABELLED = "unlabelled"


class _Source:
    """Where the CSV files and images live: a folder, or a zip read in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.prefix = ""
        self.names: set[str] | None = None
        if path.is_file():
            try:
                with zipfile.ZipFile(path) as zf:
                    names = set(zf.namelist())
            except (OSError, *ZIP_ERRORS) as exc:
                raise UsageError(f"{path}: not a readable zip archive ({exc})") from exc
            self.names = names
            self.prefix = zip_prefix(names)

    def has(self, name: str) -> bool:
        if self.names is None:
            return (self.path / name).is_file()
        return self.prefix + name in self.names

    def label(self, name: str) -> str:
        if self.names is None:
            return str(self.path / name)
        return zip_ref(self.path, self.prefix + name)

    def rows(self, name: str, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
        """``(line number, row)`` of one CSV file; bad bytes, bad quoting or missing
        columns: a UsageError."""
        label = self.label(name)
        if self.names is None:
            data = read_bytes(self.path / name)
        else:
            try:
                with zipfile.ZipFile(self.path) as zf:
                    data = zf.read(self.prefix + name)
            except (OSError, *ZIP_ERRORS) as exc:
                raise UsageError(f"cannot read {label}: {exc}") from exc
        _, rows = csv_rows(decode_text(data, label), label, required)
        return list(rows)

    def image(self, folder: str, image: str) -> str:
        if self.names is None:
            return str(self.path / folder / image)
        return zip_ref(self.path, f"{self.prefix}{folder}/{image}")


def zip_prefix(names: set[str]) -> str:
    """The folder of the CSV files in a zip: the root, or one top-level folder."""
    if any(name in names for name in CSV_FILES):
        return ""
    tops = {n.split("/", 1)[0] for n in names if n.count("/") == 1 and n.endswith(CSV_FILES)}
    for top in sorted(tops):
        if any(f"{top}/{name}" in names for name in CSV_FILES):
            return f"{top}/"
    return ""


class ShopeeDataset(GroupedCatalogue):
    """Shopee listings; a query is every labelled item of a split against that split."""

    format = "shopee"
    self_match = True

    def __init__(
        self, path: str | Path, seed: int = 0, csv: str | Sequence[str] | None = None
    ) -> None:
        root = dataset_path(path)
        if root.is_file() and root.suffix.lower() == ".csv":
            csv = csv or root.name
            root = root.parent
        super().__init__(root, seed)
        self._source = _Source(root)
        self.csv_files = self._pick(csv)

    def _pick(self, csv: str | Sequence[str] | None) -> list[str]:
        if csv is None:
            present = [name for name in CSV_FILES if self._source.has(name)]
            if not present:
                raise UsageError(f"{self.path}: no train.csv or test.csv")
            return present[:1]
        names = [n.strip() for n in csv.split(",")] if isinstance(csv, str) else list(csv)
        if names == ["all"]:
            names = [name for name in CSV_FILES if self._source.has(name)]
        for name in names:
            if not self._source.has(name):
                raise UsageError(f"{self.path}: no {name}")
        return names

    def _read(self) -> list[Product]:
        """Every listing of the chosen CSV file(s)."""
        out: list[Product] = []
        seen: set[str] = set()
        duplicates = 0
        for name in self.csv_files:
            for product in self._read_csv(name):
                if product.id in seen:
                    duplicates += 1
                    continue
                seen.add(product.id)
                out.append(product)
        self.skipped_duplicates = duplicates
        if duplicates:
            logger.warning("%s: skipped %d rows with a repeated posting_id", self.path, duplicates)
        logger.info("%s: %d listings from %s", self.name, len(out), ", ".join(self.csv_files))
        return out

    def _read_csv(self, name: str) -> Iterator[Product]:
        stem = name.rsplit("/", 1)[-1].removesuffix(".csv")
        labelled = not stem.startswith("test")
        required = ("posting_id", "image", "title") + (("label_group",) if labelled else ())
        rows = self._source.rows(name, required)
        folder = f"{stem}_images"
        label = self._source.label(name)
        for lineno, row in rows:
            posting_id = product_id(row.get("posting_id"), label, lineno)
            if posting_id is None:
                continue
            group = optional_text(row.get("label_group")) if labelled else None
            image = (row.get("image") or "").strip()
            yield Product(
                id=posting_id,
                title=row.get("title") or "",
                image_path=self._source.image(folder, image) if image else None,
                group=group,
                fields={
                    "split": split_of_group(group, self.seed) if group else UNLABELLED,
                    "image_phash": row.get("image_phash") or "",
                    "source": stem,
                },
            )
