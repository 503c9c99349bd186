"""A group-aware batch sampler: no two items of one product group share a batch.

In-batch negatives are the other rows of a batch, so two listings of one group in a
batch would be pushed apart although they match. This sampler gives each batch at
most one item per group (and, with ``buckets``, items of one bucket only, e.g. one
pair kind; with ``neg_groups``, no item whose hard negatives are of another item's
group), in an order fixed by (seed, epoch), and can start an epoch part-way through
for a resumed run. The CLIP loop uses it directly, the sentence-transformers trainer
through ``training.text.GroupedTextBatchSampler``.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence

from retrieval.errors import UsageError

log = logging.getLogger(__name__)


class EpochBatches:
    """What ``training.loop`` needs of a batch sampler, over a subclass's
    ``epoch_batches(rng)`` (drawn from ``random.Random(f"{seed}:{epoch}")``, so the same
    for the same seed and epoch): every batch of an epoch, a position to resume from,
    iteration from there, and each epoch's length. Subclasses set ``seed``, and
    ``epoch`` and ``skip`` to 0."""

    seed: int
    epoch: int
    skip: int
    _cache: tuple[int, list[list[int]]] | None = None

    def epoch_batches(self, rng: random.Random) -> list[list[int]]:
        raise NotImplementedError

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every batch of an epoch, in order (the same for the same seed and epoch)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.epoch_batches(random.Random(f"{self.seed}:{epoch}")))
        return self._cache[1]

    # Not ``set_epoch``: accelerate's DataLoaderShard calls that with its own pass
    # counter on every iteration, which would reset a resumed run's position.
    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order and skip its first ``skip`` batches (resume)."""
        self.epoch = epoch
        self.skip = skip

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.skip :]

    def __len__(self) -> int:
        return max(0, len(self.batches()) - self.skip)

    def epoch_length(self, epoch: int | None = None) -> int:
        """Batches in a whole epoch, whatever the skip (it may differ by one or two
        from epoch to epoch where the order decides what fits)."""
        return len(self.batches(epoch))


class GroupBatchSampler(EpochBatches):
    """Batches of indices into ``groups`` with one item per group at most.

    Each round shuffles the groups that still hold items, cuts them into batches of
    ``batch_size`` and takes one item from each; groups left over wait for the next
    round; the batches of all rounds are then shuffled. Items that cannot fill a
    batch at the end of an epoch are dropped (a different set each epoch), or, with
    ``drop_last=False``, go in smaller batches. ``neg_groups[i]`` names the groups of
    item i's hard negatives: a group that clashes with a batch waits for the next round."""

    def __init__(
        self,
        groups: Sequence[Hashable],
        batch_size: int,
        *,
        seed: int = 0,
        buckets: Sequence[Hashable] | None = None,
        neg_groups: Sequence[frozenset[Hashable]] | None = None,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 2:
            raise UsageError(
                f"batch size must be at least 2 for in-batch negatives, got {batch_size}"
            )
        if buckets is not None and len(buckets) != len(groups):
            raise UsageError("buckets and groups must have the same length")
        if neg_groups and len(neg_groups) != len(groups):
            raise UsageError("neg_groups and groups must have the same length")
        self.neg_groups = list(neg_groups) if neg_groups else [frozenset()] * len(groups)
        self.drop_last = drop_last
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self._members: dict[Hashable, dict[Hashable, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for i, group in enumerate(groups):
            self._members[buckets[i] if buckets is not None else None][group].append(i)
        usable = {b: len(g) for b, g in self._members.items() if len(g) >= batch_size}
        if not usable:
            most = max((len(g) for g in self._members.values()), default=0)
            raise UsageError(
                f"only {most} product groups for a batch size of {batch_size}: every batch "
                "needs one group per row; lower --batch-size or add groups"
            )
        for bucket in set(self._members) - set(usable):
            log.warning("pair kind %s has fewer groups than the batch size: skipped", bucket)
            del self._members[bucket]

    def epoch_batches(self, rng: random.Random) -> list[list[int]]:
        """One epoch's batches, drawn from ``rng``."""
        out: list[list[int]] = []
        for bucket in sorted(self._members, key=repr):
            pools = {g: rng.sample(items, len(items)) for g, items in self._members[bucket].items()}
            partial = False  # full batches while enough groups last, then the rest if kept
            while pools and (len(pools) >= self.batch_size or not self.drop_last):
                order = sorted(pools, key=repr)
                rng.shuffle(order)
                filled = self._fill(order, pools, partial or len(pools) < self.batch_size)
                if not filled:  # clashes leave no full batch: the rest is too entangled
                    if self.drop_last:
                        break
                    partial = True
                    continue
                out.extend([pools[g].pop() for g in batch] for batch in filled)
                pools = {g: items for g, items in pools.items() if items}
        rng.shuffle(out)
        return out

    def _fill(
        self, order: list[Hashable], pools: dict[Hashable, list[int]], partial: bool
    ) -> list[list[Hashable]]:
        """Groups of ``order`` cut greedily into batches: a group joins the open batch
        unless its next item's negatives meet the batch's groups or the batch's negatives
        meet its group (then it waits); the last open batch counts only if ``partial``."""
        batches: list[list[Hashable]] = []
        batch: list[Hashable] = []
        anchors: set[Hashable] = set()
        negs: set[Hashable] = set()
        for group in order:
            item_negs = self.neg_groups[pools[group][-1]]
            if group in negs or item_negs & anchors:
                continue
            batch.append(group)
            anchors.add(group)
            negs |= item_negs
            if len(batch) == self.batch_size:
                batches.append(batch)
                batch, anchors, negs = [], set(), set()
        if partial and batch:
            batches.append(batch)
        return batches
