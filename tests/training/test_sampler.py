"""The group-aware batch sampler: one item per group a batch, a fixed order, resumable."""

from __future__ import annotations

import pytest

from retrieval.errors import UsageError
from training.sampler import GroupBatchSampler

# 10 groups of 1-4 items: g0 has 1 item, g1 2, g2 3, g3 4, g4 1, ...
GROUPS = [f"g{g}" for g in range(10) for _ in range(g % 4 + 1)]


def test_no_group_twice_in_a_batch():
    sampler = GroupBatchSampler(GROUPS, 4, seed=1)
    batches = list(sampler)
    assert batches and all(len(b) == 4 for b in batches)
    for batch in batches:
        assert len({GROUPS[i] for i in batch}) == 4
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))  # no item twice in an epoch
    assert len(flat) >= len(GROUPS) - 2 * 4  # only leftovers of the last rounds dropped


def test_order_is_fixed_by_seed_and_epoch():
    one, two = GroupBatchSampler(GROUPS, 4, seed=3), GroupBatchSampler(GROUPS, 4, seed=3)
    assert list(one) == list(two)
    first = list(one)
    one.set_position(1)
    assert list(one) != first
    assert list(one) == two.batches(epoch=1)
    assert list(GroupBatchSampler(GROUPS, 4, seed=4)) != first


def test_resume_skips_the_first_batches():
    sampler = GroupBatchSampler(GROUPS, 3, seed=0)
    whole = sampler.batches(epoch=2)
    sampler.set_position(2, skip=2)
    assert list(sampler) == whole[2:]
    assert len(sampler) == len(whole) - 2 and sampler.epoch_length() == len(whole)


def test_buckets_never_mix():
    kinds = ["image-text" if i % 2 else "text-text" for i in range(len(GROUPS))]
    sampler = GroupBatchSampler(GROUPS, 2, seed=0, buckets=kinds)
    for batch in sampler:
        assert len({kinds[i] for i in batch}) == 1


def test_hard_negatives_of_a_group_never_share_its_batch():
    # item i's hard negative is of the next group: (g0, g1) may not share a batch, ...
    names = sorted(set(GROUPS))
    negs = [frozenset({names[(names.index(g) + 1) % len(names)]}) for g in GROUPS]
    for drop_last in (True, False):
        sampler = GroupBatchSampler(GROUPS, 3, seed=2, neg_groups=negs, drop_last=drop_last)
        batches = list(sampler)
        assert batches
        for batch in batches:
            anchors = {GROUPS[i] for i in batch}
            assert len(anchors) == len(batch)
            assert not any(negs[i] & anchors for i in batch), batch
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(GROUPS)))  # drop_last=False: every item, some batches short
    assert min(len(b) for b in batches) < 3


def test_too_few_groups_fails_before_training():
    with pytest.raises(UsageError, match="only 10 product groups for a batch size of 16"):
        GroupBatchSampler(GROUPS, 16)
    with pytest.raises(UsageError, match="at least 2"):
        GroupBatchSampler(GROUPS, 1)
