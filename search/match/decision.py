"""The match decision on one listing's ranked candidates.

Every candidate whose final score reaches the threshold (tuned on the valid split by the
evaluator) is a match and, with ``keep_nearest``, always the first one (every Shopee
group has at least two listings). ``search.evaluation.thresholds`` runs the same rule
vectorised over many thresholds.
"""

from __future__ import annotations

from retrieval.types import Candidate


def decide(
    candidates: list[Candidate], threshold: float | None, keep_nearest: bool
) -> list[Candidate]:
    """Matches among ranked candidates: score over the threshold, plus the nearest if asked."""
    out = [c for c in candidates if threshold is not None and (c.score or 0.0) >= threshold]
    if keep_nearest and candidates and candidates[0] not in out:
        out.insert(0, candidates[0])
    return out
