"""Training pairs for CLIP / SigLIP fine-tuning, built from product groups.

Pair kinds (``a`` side - ``b`` side):

* ``image-text``: a listing's image and its own title;
* ``image-image``: the images of two listings of one group;
* ``text-text``: the titles of two listings of one group.

Each pair carries its group id, so the sampler can keep a group out of a batch twice
and the loss can mask same-group entries. Mined hard negatives (the FlagEmbedding
JSONL layout ``{"query", "pos", "neg", "query_id", "pos_ids", "neg_ids"}`` that
``search mine`` writes) add one extra ``b``-side candidate per row.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.data.records import read_jsonl
from retrieval.errors import UsageError, unknown_name
from retrieval.types import Product

log = logging.getLogger(__name__)

PAIR_KINDS = ("image-text", "image-image", "text-text")


@dataclass(frozen=True)
class Pair:
    """Positions of the two listings in the product list, the pair kind and group id."""

    kind: str
    a: int
    b: int
    group: int


def parse_pair_kinds(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"image-text,text-text"`` (or a list) -> checked pair kinds."""
    items = text.split(",") if isinstance(text, str) else list(text)
    kinds = tuple(dict.fromkeys(k.strip() for k in items if k.strip()))
    for kind in kinds:
        if kind not in PAIR_KINDS:
            raise unknown_name("pair kind", kind, PAIR_KINDS)
    if not kinds:
        raise UsageError(f"no pair kinds given; use some of {', '.join(PAIR_KINDS)}")
    return kinds


def build_pairs(products: Sequence[Product], kinds: Sequence[str]) -> list[Pair]:
    """Every pair of the asked kinds among grouped products, in a fixed order."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(products):
        if p.group is not None:
            members[p.group].append(i)
    pairs: list[Pair] = []
    for gid, group in enumerate(sorted(members)):
        items = members[group]
        with_image = [i for i in items if products[i].image_path]
        with_title = [i for i in items if products[i].title.strip()]
        if "image-text" in kinds:
            pairs += [Pair("image-text", i, i, gid) for i in with_image if i in with_title]
        for kind, side in (("image-image", with_image), ("text-text", with_title)):
            if kind in kinds and len(side) >= 2:
                # each listing with the next one: n pairs for n > 2, one for two
                count = len(side) if len(side) > 2 else 1
                pairs += [Pair(kind, side[j], side[(j + 1) % len(side)], gid) for j in range(count)]
    return pairs


def read_negatives(path: str | Path, products: Sequence[Product]) -> dict[int, list[int]]:
    """query position -> positions of its mined negatives, from a FlagEmbedding JSONL
    with ``query_id`` and ``neg_ids`` (rows or ids not among ``products`` are skipped)."""
    where = {p.id: i for i, p in enumerate(products)}
    out: dict[int, list[int]] = {}
    for line_no, row in read_jsonl(Path(path)):
        if "query_id" not in row or "neg_ids" not in row:
            raise UsageError(f"{path}:{line_no}: needs query_id and neg_ids for CLIP training")
        negs = [where[n] for n in row["neg_ids"] if n in where]
        if str(row["query_id"]) in where and negs:
            out[where[str(row["query_id"])]] = negs
    log.info("hard negatives for %d of %d listings", len(out), len(products))
    return out


class PairDataset:
    """Map-style dataset: pair index -> (pair, a input, b input, negative or None).

    An image input is the transformed tensor, a text input the raw title (the collate
    function tokenises a whole batch at once)."""

    def __init__(
        self,
        products: Sequence[Product],
        pairs: Sequence[Pair],
        transform: Callable[[Any], Any],
        negatives: dict[int, list[int]] | None = None,
        seed: int = 0,
    ) -> None:
        self.products, self.pairs, self.transform = list(products), list(pairs), transform
        self.negatives, self.seed, self.epoch = negatives or {}, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from (seed, epoch, item): the same after a resume."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def _input(self, pos: int, modality: str) -> Any:
        from retrieval.data.images import load_image

        product = self.products[pos]
        if modality == "text":
            return product.title
        import torch

        try:
            image = load_image(str(product.image_path))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash((self.seed, self.epoch, pos)) & 0x7FFFFFFF)
                return self.transform(image)
        except OSError as exc:
            raise UsageError(f"listing {product.id}: {exc}") from exc

    def __getitem__(self, i: int) -> tuple[Pair, Any, Any, tuple[Any, int] | None]:
        pair = self.pairs[i]
        a_mod, b_mod = pair.kind.split("-")
        negative = None
        choices = [
            n
            for n in self.negatives.get(pair.a, [])
            if b_mod == "text" or self.products[n].image_path
        ]
        if choices:
            pick = random.Random(f"{self.seed}:{i}").choice(choices)
            negative = (self._input(pick, b_mod), pick)
        return pair, self._input(pair.a, a_mod), self._input(pair.b, b_mod), negative


def make_collate(tokenizer: Callable[[list[str]], Any], group_of: Callable[[int], int]):
    """Collate function: stacks images, tokenises titles, adds group ids (and the
    negatives with their group ids, ``group_of(position)``)."""
    import torch

    def stack(values: list[Any], modality: str) -> Any:
        return tokenizer(list(values)) if modality == "text" else torch.stack(values)

    def collate(items: list[tuple[Pair, Any, Any, tuple[Any, int] | None]]) -> dict[str, Any]:
        kind = items[0][0].kind
        a_mod, b_mod = kind.split("-")
        batch: dict[str, Any] = {
            "kind": kind,
            "a": stack([it[1] for it in items], a_mod),
            "b": stack([it[2] for it in items], b_mod),
            "groups": torch.tensor([it[0].group for it in items], dtype=torch.long),
        }
        negs = [it[3] for it in items if it[3] is not None]
        if negs:
            batch["extra"] = stack([n[0] for n in negs], b_mod)
            batch["extra_groups"] = torch.tensor([group_of(n[1]) for n in negs], dtype=torch.long)
        return batch

    return collate
