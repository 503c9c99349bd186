"""A plain catalogue file: JSON lines, a JSON array, or CSV with id, title, image, group.

``image`` and ``group`` are optional; other columns go to ``Product.fields``. Relative
image paths resolve against the file's folder. Groups are split like Shopee's: every
item of a group lands in the same split; items without a group are indexed, never queried.
A ``split`` column is ignored: splits always follow groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval.data.base import GroupedCatalogue, split_of_group
from retrieval.data.records import (
    dataset_path,
    image_ref,
    optional_text,
    product_id,
    read_csv,
    read_json_records,
    read_jsonl,
    text_of,
)
from retrieval.errors import UsageError
from retrieval.types import Product

logger = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".json", ".csv")
UNLABELLED = "unlabelled"
_CORE = ("id", "title", "image", "group")


class CatalogDataset(GroupedCatalogue):
    """Products of one file, matched within their group."""

    format = "catalog"

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        file = dataset_path(path)
        if not file.is_file() or file.suffix.lower() not in SUFFIXES:
            raise UsageError(f"{path}: a catalog is a {', '.join(SUFFIXES)} file")
        super().__init__(file, seed)

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        suffix = self.path.suffix.lower()
        if suffix == ".jsonl":
            return read_jsonl(self.path)
        if suffix == ".json":
            return read_json_records(self.path)
        return read_csv(self.path, required=("id",))

    def _read(self) -> list[Product]:
        base = self.path.parent
        out: list[Product] = []
        seen: set[str] = set()
        for lineno, record in self._records():
            pid = product_id(record.get("id"), self.path, lineno)
            if pid is None:
                raise UsageError(f"{self.path}:{lineno}: record has no 'id'")
            if pid in seen:
                self.skipped_duplicates += 1
                logger.warning("%s:%d: repeated id %r skipped", self.path, lineno, pid)
                continue
            seen.add(pid)
            group = optional_text(record.get("group"))
            fields = {k: v for k, v in record.items() if k not in _CORE}
            fields["split"] = split_of_group(group, self.seed) if group else UNLABELLED
            out.append(
                Product(
                    id=pid,
                    title=text_of(record.get("title")),
                    image_path=image_ref(record.get("image"), base),
                    group=group,
                    fields=fields,
                )
            )
        logger.info("%s: %d products", self.name, len(out))
        return out
