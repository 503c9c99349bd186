"""The review queue behind the studio's queue page: ``search.match.review``'s
``RunQueue`` for a match run and ``ColdStart`` for a review folder (imported when a run
opens, so the plain viewer never loads the pair model's stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.web.studio_data import RunData


def open_queue(folder: Path, run: RunData) -> Any:
    """The queue of a run folder: ``.next(n)``, ``.record(label)``, ``.progress()``."""
    from search.match import review

    if run.meta.get("kind") == "review":
        return review.ColdStart.open(folder)
    return review.RunQueue.open(folder)
