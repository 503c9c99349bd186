"""The dataset contract every reader fulfils, and the group split shared by labelled sets."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from retrieval.data.records import dataset_name
from retrieval.types import Product, Query

SPLITS = ("train", "valid", "test")
# Fractions of groups that go to train and valid; the rest is test.
DEFAULT_SPLIT = (0.7, 0.15)


class Dataset(ABC):
    """A product set: what to index, and the labelled queries to run against it."""

    name: str = "dataset"
    format: str = ""
    #: True where queries are items of the indexed set itself (Shopee): a query's own
    #: point is dropped from its hits, and retrieval is restricted to the query's split.
    self_match: bool = False
    #: Rows skipped because their id repeated an earlier row's (set once products are read).
    skipped_duplicates: int = 0

    def __init__(self, path: Path, seed: int = 0) -> None:
        """A reader of the set at ``path`` (absolute: ``records.dataset_path``), named after
        it; ``seed`` varies the group split."""
        self.path = path
        self.seed = seed
        self.name = dataset_name(path)

    @abstractmethod
    def products(self) -> Iterator[Product]:
        """Every listing to index, streamed."""

    @abstractmethod
    def queries(self, split: str | None = None) -> list[Query]:
        """Labelled queries of one split (``None``: all of them)."""

    def search_filter(self, split: str | None) -> dict[str, str] | None:
        """Payload equality filter that restricts a split's queries to their candidates."""
        if self.self_match and split is not None:
            return {"split": split}
        return None

    def describe(self) -> dict[str, object]:
        """Counts for ``search data info``."""
        products = list(self.products())
        with_image = sum(1 for p in products if p.image_path)
        groups = {p.group for p in products if p.group is not None}
        info: dict[str, object] = {
            "name": self.name,
            "format": self.format,
            "products": len(products),
            "with_image": with_image,
            "groups": len(groups),
            "duplicate_ids": self.skipped_duplicates,
        }
        for split in SPLITS:
            info[f"queries_{split}"] = len(self.queries(split))
        return info


class GroupedCatalogue(Dataset):
    """A catalogue read whole on first use (``_read``) and kept; its queries are its
    grouped listings, each with its group mates (``group_queries``)."""

    self_match = True
    _products: list[Product] | None = None

    @abstractmethod
    def _read(self) -> list[Product]:
        """Every listing of the source, in order."""

    def products(self) -> Iterator[Product]:
        """Every listing, read once and cached."""
        if self._products is None:
            self._products = self._read()
        return iter(self._products)

    def queries(self, split: str | None = None) -> list[Query]:
        """Every grouped listing of ``split`` (``None``: all splits) with its group mates."""
        return group_queries(self.products(), split)


def split_of_group(
    group: str, seed: int = 0, fractions: tuple[float, float] = DEFAULT_SPLIT
) -> str:
    """Deterministic split of a label group: the same group lands in the same split on
    every machine and every run (a hash, not a random generator)."""
    digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "valid"
    return "test"


def group_queries(products: Iterable[Product], split: str | None = None) -> list[Query]:
    """Every item of a split is a query; its matches are the other items of its group
    in the same split (the item itself is excluded from retrieval)."""
    members: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    items: list[Product] = []
    for p in products:
        p_split = p.fields.get("split")
        if split is not None and p_split != split:
            continue
        if p.group is None:
            continue
        members[(p_split, p.group)].append(p.id)
        items.append(p)
    out = []
    for p in items:
        p_split = p.fields.get("split")
        matches = tuple(m for m in members[(p_split, p.group)] if m != p.id)
        out.append(Query(product=p, matches=matches, split=p_split))
    return out
