"""Query/gallery sets ("Coupert style"): a folder with ``gallery.jsonl`` and ``queries.jsonl``.

Gallery records: ``{"id", "title", "image": null | path, ...}``. Query records add
``"matches": [gallery ids]``, optionally ``"hard_negatives"`` and ``"split"``. Only the
gallery is indexed; queries search it. Keys beyond id/title/image go to ``Product.fields``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval.data.base import Dataset, split_of_group
from retrieval.data.records import (
    dataset_path,
    image_ref,
    product_id,
    read_jsonl,
    text_of,
)
from retrieval.errors import UsageError
from retrieval.types import Product, Query

logger = logging.getLogger(__name__)

GALLERY = "gallery.jsonl"
QUERIES = "queries.jsonl"
_CORE = ("id", "title", "image")


class QueryGalleryDataset(Dataset):
    """Queries with labelled matches against a separate gallery."""

    format = "query-gallery"
    self_match = False

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        root = dataset_path(path)
        for name in (GALLERY, QUERIES):
            if not (root / name).is_file():
                raise UsageError(f"{root}: no {name} (a query-gallery set needs both files)")
        super().__init__(root, seed)
        self._gallery: list[Product] | None = None
        self._queries: list[Query] | None = None

    def products(self) -> Iterator[Product]:
        """The gallery listings (what gets indexed), read once and cached."""
        if self._gallery is None:
            self._gallery = self._read_gallery()
        return iter(self._gallery)

    def queries(self, split: str | None = None) -> list[Query]:
        """Queries of ``split`` (``None``: all), in file order."""
        if self._queries is None:
            self._queries = self._read_queries()
        if split is None:
            return list(self._queries)
        return [q for q in self._queries if q.split == split]

    def _product(self, record: dict[str, Any], source: Path, lineno: int) -> Product:
        pid = product_id(record.get("id"), source, lineno)
        if pid is None:
            raise UsageError(f"{source}:{lineno}: record has no 'id'")
        fields = {k: v for k, v in record.items() if k not in _CORE}
        return Product(
            id=pid,
            title=text_of(record.get("title")),
            image_path=image_ref(record.get("image"), self.path),
            group=None,
            fields=fields,
        )

    def _read_gallery(self) -> list[Product]:
        source = self.path / GALLERY
        out: list[Product] = []
        seen: set[str] = set()
        for lineno, record in read_jsonl(source):
            product = self._product(record, source, lineno)
            if product.id in seen:
                self.skipped_duplicates += 1
                logger.warning("%s:%d: repeated id %r skipped", source, lineno, product.id)
                continue
            seen.add(product.id)
            out.append(product)
        logger.info("%s: %d gallery products", self.name, len(out))
        return out

    def _read_queries(self) -> list[Query]:
        source = self.path / QUERIES
        gallery = {p.id for p in self.products()}
        out: list[Query] = []
        unmatched = 0
        for lineno, record in read_jsonl(source):
            matches = record.pop("matches", None) or []
            if not isinstance(matches, list):
                raise UsageError(f"{source}:{lineno}: 'matches' must be a list of gallery ids")
            product = self._product(record, source, lineno)
            split = text_of(record.get("split")).strip() or split_of_group(product.id, self.seed)
            product.fields["split"] = split
            ids = tuple(str(m) for m in matches)
            if not ids or any(m not in gallery for m in ids):
                unmatched += 1
            out.append(Query(product=product, matches=ids, split=split))
        if unmatched:
            logger.warning(
                "%s: %d of %d queries have no matches or matches missing from the gallery (kept)",
                source,
                unmatched,
                len(out),
            )
        return out
