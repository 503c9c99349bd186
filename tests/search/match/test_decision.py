"""The match decision: threshold on the final score, optionally keeping the nearest."""

from __future__ import annotations

from retrieval.types import Candidate, Product
from search.match.decision import decide


def test_decide_threshold_and_keep_nearest():
    cands = [Candidate(Product(str(i)), 0, i, score=s) for i, s in enumerate([0.9, 0.4, 0.2], 1)]
    assert [c.id for c in decide(cands, 0.5, False)] == ["1"]
    assert [c.id for c in decide(cands, 0.95, True)] == ["1"]
    assert decide(cands, 0.95, False) == []
    assert [c.id for c in decide(cands, 0.3, False)] == ["1", "2"]
    assert decide([], 0.1, True) == []
