"""Group-balanced batches for classification losses (ArcFace): P groups x K items.

Each epoch every group's items are shuffled and cut into chunks of ``per_group``
(a group with fewer items is topped up by drawing its own items again), the chunks
are shuffled and packed ``batch_size // per_group`` to a batch. Small and large groups
thus meet in every batch, and the order is fixed by (seed, epoch) so a resumed run
replays it. ``set_position`` / ``epoch_length`` are what ``training.loop`` needs.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Sequence

from retrieval.errors import UsageError
from training.sampler import EpochBatches


class BalancedGroupSampler(EpochBatches):
    """Batches of ``batch_size`` indices into ``groups``, ``per_group`` of each group."""

    def __init__(
        self, groups: Sequence[Hashable], batch_size: int, *, per_group: int = 4, seed: int = 0
    ) -> None:
        if per_group < 1 or batch_size < per_group:
            raise UsageError(
                f"batch size {batch_size} must be at least --per-group {per_group} (>= 1)"
            )
        self.members: dict[Hashable, list[int]] = defaultdict(list)
        for i, group in enumerate(groups):
            self.members[group].append(i)
        if len(self.members) < 2:
            raise UsageError("group-balanced sampling needs at least two groups")
        self.batch_size, self.per_group, self.seed = batch_size, per_group, seed
        self.epoch, self.skip = 0, 0

    def epoch_batches(self, rng: random.Random) -> list[list[int]]:
        """One epoch's batches, drawn from ``rng``."""
        chunks: list[list[int]] = []
        for group in sorted(self.members, key=repr):
            items = rng.sample(self.members[group], len(self.members[group]))
            while len(items) % self.per_group:
                items.append(rng.choice(self.members[group]))
            chunks += [items[i : i + self.per_group] for i in range(0, len(items), self.per_group)]
        rng.shuffle(chunks)
        per_batch = self.batch_size // self.per_group
        out = [
            [i for chunk in chunks[s : s + per_batch] for i in chunk]
            for s in range(0, len(chunks) - per_batch + 1, per_batch)
        ] or [[i for chunk in chunks for i in chunk]]
        return out
