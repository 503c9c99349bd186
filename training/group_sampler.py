"""A batch sampler that never lets two rows of one match group meet in a batch.

In-batch negatives treat every other row's positive (and hard negatives) as a
non-match, so a batch must not hold two rows of one group, nor a row whose hard
negative is of another row's group. sentence-transformers' NoDuplicatesBatchSampler
checks texts, not groups; this one checks group keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from sentence_transformers import DefaultBatchSampler


class GroupBatchSampler(DefaultBatchSampler):
    """Shuffled batches (seeded by ``seed + epoch``, so a resumed run replays the same
    order) filled greedily with rows whose groups do not clash."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        *,
        groups: Sequence[str],
        neg_groups: Sequence[frozenset[str]] = (),
    ) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        self.groups = list(groups)
        self.neg_groups = list(neg_groups) or [frozenset()] * len(self.groups)

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        remaining = torch.randperm(len(self.groups), generator=gen).tolist()
        while remaining:
            batch: list[int] = []
            anchors: set[str] = set()
            negs: set[str] = set()
            left: list[int] = []
            for i in remaining:
                g, ng = self.groups[i], self.neg_groups[i]
                if (
                    len(batch) < self.batch_size
                    and g not in anchors
                    and g not in negs
                    and not (ng & anchors)
                ):
                    batch.append(i)
                    anchors.add(g)
                    negs.update(ng)
                else:
                    left.append(i)
            remaining = left
            if len(batch) < self.batch_size and self.drop_last:
                # the rest cannot fill a clash-free batch; a later epoch reshuffles them
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.groups)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
