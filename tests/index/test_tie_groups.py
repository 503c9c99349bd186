"""Tie groups in every answer's order (rank_fusion's docstring): scores a float hair
apart are one tie, whichever side of a rounding boundary the noise puts them."""

from __future__ import annotations

from retrieval.index.rank_fusion import ranked_hits, settled, tie_groups, tied_ranks
from retrieval.types import Hit


def hits(*pairs: tuple[str, float]) -> list[Hit]:
    return [Hit(id=pid, score=score) for pid, score in pairs]


def test_noise_across_a_rounding_boundary_is_still_a_tie():
    # 1.2345499999 and 1.2345500001 round to different 5-digit values
    one = ranked_hits(hits(("b", 1.2345500001), ("a", 1.2345499999), ("c", 0.9)))
    other = ranked_hits(hits(("a", 1.2345500002), ("b", 1.2345499998), ("c", 0.9)))
    assert [h.id for h in one] == [h.id for h in other] == ["a", "b", "c"]


def test_distinct_scores_keep_their_order():
    ranked = ranked_hits(hits(("a", 0.5), ("b", 0.51), ("c", 0.52)))
    assert [h.id for h in ranked] == ["c", "b", "a"]
    assert tie_groups([3.0, 3.0 + 1e-9, 2.0, 1.0, 1.0]) == [0, 0, 2, 3, 3]


def test_tied_ranks_share_the_best_rank_in_any_order():
    assert tied_ranks([1.0, 2.0, 1.0 + 1e-8, 0.5]) == [1, 0, 1, 3]


def test_a_tie_group_cut_by_the_fetch_limit_is_left_out():
    full = hits(("a", 3.0), ("b", 2.0), ("c", 1.0), ("d", 1.0 + 1e-9))
    assert [h.id for h in settled(full, cut=10, fetched=4)] == ["a", "b"]
    assert [h.id for h in settled(full, cut=10, fetched=5)] == ["a", "b", "c", "d"]
    alone = hits(("x", 1.0), ("y", 1.0))
    assert [h.id for h in settled(alone, cut=10, fetched=2)] == ["x", "y"]
