"""Why a match run did (or did not) match two listings, read from the run folder alone
(``search.match.artifacts``): no index, no model loaded.

For a pair model's edge: each feature's contribution to the edge's logit (LightGBM
``pred_contrib`` averaged over the seeds and both directions, as the score is), the
largest ones by name, the others as ``rest``, then the bias; they add up to the logit.
For a stage-1 rule: every thresholded score of the pair beside its threshold, which one
admitted the pair and by what margin. ``search explain RUN ID_A ID_B`` prints it; the
studio's pair view shows the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval.errors import SearchError
from search.match.artifacts import EDGES, LABELS, LISTINGS, read_jsonl, read_run
from search.match.labels import Label, read_labels


@dataclass
class Check:
    """One thresholded score of a pair: its value, threshold and margin."""

    score: str
    value: float | None
    threshold: float | None  # None: switched off
    admitted: bool

    @property
    def margin(self) -> float | None:
        if self.value is None or self.threshold is None:
            return None
        return self.value - self.threshold


@dataclass
class PairExplanation:
    """Everything the run holds about one pair (``a`` < ``b`` by id)."""

    a: dict[str, Any]
    b: dict[str, Any]
    run: dict[str, Any]
    edge: dict[str, Any] | None  # None: joined by group consistency, never scored
    matched: bool
    rule: str | None
    checks: list[Check] = field(default_factory=list)
    label: Label | None = None

    @property
    def contrib(self) -> list[tuple[str, float]]:
        """The pair model's terms in order (features by size, ``rest``, ``bias``); empty
        for an edge the pair model did not score."""
        c = (self.edge or {}).get("contrib") or {}
        return [(k, float(v)) for k, v in c.items() if k != "logit"]

    @property
    def logit(self) -> float | None:
        c = (self.edge or {}).get("contrib")
        return float(c["logit"]) if c else None

    def steps(self) -> list[tuple[str, float, float]]:
        """The waterfall: (term, contribution, running total) from the bias up."""
        terms = sorted(self.contrib, key=lambda t: (t[0] != "bias", t[0] == "rest"))
        total, out = 0.0, []
        for name, value in terms:
            total += value
            out.append((name, value, total))
        return out


def _threshold(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def explain_pair(run_dir: Path, id_a: str, id_b: str) -> PairExplanation:
    """The explanation of the pair (``id_a``, ``id_b``) in the run at ``run_dir``; an
    unknown id, a self-pair or a pair the run never scored nor matched is one error."""
    run = read_run(run_dir)
    if id_a == id_b:
        raise SearchError(f"{id_a!r} paired with itself: give two listing ids")
    a, b = sorted((id_a, id_b))
    rows = {
        row["id"]: row for row in read_jsonl(Path(run_dir) / LISTINGS) if row.get("id") in (a, b)
    }
    for pid in (a, b):
        if pid not in rows:
            raise SearchError(f"no listing {pid!r} in the run {run_dir}")
    edge = next(
        (e for e in read_jsonl(Path(run_dir) / EDGES) if e.get("a") == a and e.get("b") == b), None
    )
    labels = read_labels(Path(run_dir) / LABELS)
    label = labels.get((a, b))
    if edge is None:
        if not _grouped(Path(run_dir), a, b):
            raise SearchError(f"{a} and {b} are not a candidate pair of the run {run_dir}")
        return PairExplanation(rows[a], rows[b], run, None, True, "group", label=label)
    scores = edge.get("scores") or {}
    checks = [
        Check(name, scores.get(name), _threshold(t), edge.get("rule") == name)
        for name, t in (run.get("thresholds") or {}).items()
    ]
    min2 = (run.get("rule") or {}).get("min2")
    if min2 is not None:
        primary = run.get("primary")
        checks.append(
            Check("min2", scores.get(primary), _threshold(min2), edge.get("rule") == "min2")
        )
    return PairExplanation(
        rows[a], rows[b], run, edge, bool(edge.get("matched")), edge.get("rule"), checks, label
    )


def _grouped(run_dir: Path, a: str, b: str) -> bool:
    """Whether matches.jsonl puts ``b`` among ``a``'s matches (joined without an edge)."""
    path = run_dir / "matches.jsonl"
    if not path.is_file():
        return False
    for row in read_jsonl(path):
        if row.get("id") in (a, b):
            other = b if row["id"] == a else a
            if any(m.get("id") == other for m in row.get("matches") or []):
                return True
    return False
