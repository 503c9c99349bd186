"""The review queue behind the studio's queue page: ``search.match.review``'s
``RunQueue`` for a match run and ``ColdStart`` for a review folder; where that module is
not installed yet, ``NearestFirst``: unlabelled edges nearest the decision threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.match.labels import Label, append_label, read_labels
from search.web.studio_data import RunData, number


@dataclass(frozen=True)
class Item:
    """One pair to review (the fields of ``search.match.review.QueueItem``)."""

    a: str
    b: str
    score: float
    threshold: float
    reason: str


class NearestFirst:
    """Unlabelled candidate edges, nearest the run's threshold first."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.threshold = number(run.meta.get("threshold")) or 0.0
        scored = [e for e in run.edges if e.score is not None]
        self.order = sorted(scored, key=lambda e: (abs(e.score - self.threshold), e.a, e.b))

    def _labels(self) -> dict[tuple[str, str], Label]:
        return read_labels(self.run.labels_path, set(self.run.listings))

    def next(self, n: int) -> list[Item]:
        done = self._labels()
        out = []
        for e in self.order:
            if (e.a, e.b) not in done:
                out.append(Item(e.a, e.b, e.score, self.threshold, "near the threshold"))
                if len(out) == n:
                    break
        return out

    def record(self, label: Label) -> None:
        append_label(self.run.labels_path, label)

    def progress(self) -> dict[str, Any]:
        counts = Counter(lab.verdict for lab in self._labels().values())
        return {
            "labelled": sum(counts.values()),
            **{v: counts.get(v, 0) for v in ("match", "no_match", "skip")},
            "threshold": self.threshold,
            "f1": None,
        }


def open_queue(folder: Path, run: RunData) -> Any:
    """The queue for a run folder (``RunQueue``/``ColdStart`` where they exist)."""
    try:
        from search.match import review
    except ImportError:
        return NearestFirst(run)
    if run.meta.get("kind") == "review":
        return review.ColdStart.open(folder)
    return review.RunQueue.open(folder)
