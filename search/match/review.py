"""The review queues: which unlabelled pair a reviewer should look at next.

``RunQueue`` walks a match run (``search match ... --out RUN``: ``run.json`` and
``edges.jsonl``) in the order a label teaches most: the edges within ``NEAR_LOGIT``
logits of the decision threshold (nearest first), then the edges a predicted group's
merge hangs on (a bridge of the matched graph with two listings or more on each side),
then every other edge by its distance to the threshold. Labelled pairs are skipped;
``record`` appends a verdict to ``RUN/labels.jsonl`` (``search.match.labels``).

``ColdStart`` (``search.match.cold_start``, re-exported here) is the same queue over an
unlabelled catalogue, refitting its pair model from the labels as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import SearchError, UsageError
from retrieval.types import ProgressFactory
from search.match.artifacts import EDGES, LABELS, LISTINGS, RUN, read_jsonl, read_run
from search.match.cold_start import BATCH, ColdStart
from search.match.labels import Label, append_label, read_labels
from search.match.queue import (
    BRIDGE,
    NEAR,
    QueueItem,
    bridges,
    distance,
    pair_key,
    pick,
    progress_counts,
)

log = logging.getLogger(__name__)
NEAR_LOGIT = 1.0  # within this many logits of the threshold (0.27..0.73 around 0.5)
NEAR_COSINE = 0.05  # for a cosine primary score
__all__ = ["ColdStart", "QueueItem", "RunQueue", "start_review"]


@dataclass
class RunQueue:
    """A match run's candidate pairs (``a`` < ``b``), their primary score and whether
    the run matched them, against the run's decision ``threshold``."""

    a: list[str]
    b: list[str]
    score: np.ndarray
    matched: np.ndarray
    threshold: float
    labels_path: Path | None = None
    probability: bool = True  # the score is a probability (distance in logits)
    labels: dict[tuple[str, str], Label] = field(default_factory=dict)
    source: str = "studio"

    def __post_init__(self) -> None:
        self._order = self._rank()

    @classmethod
    def open(cls, run_dir: str | Path, source: str = "studio") -> RunQueue:
        """The queue of a match run folder (its labels read, checked against its ids)."""
        run = Path(run_dir)
        meta = read_run(run)
        edges = []
        for number, e in enumerate(read_jsonl(run / EDGES), start=1):
            try:
                edges.append((str(e["a"]), str(e["b"]), e["score"], bool(e.get("matched", False))))
            except (KeyError, TypeError) as exc:
                raise SearchError(f"{run / EDGES}:{number}: not an edge ({exc})") from None
        ids = {str(r.get("id")) for r in read_jsonl(run / LISTINGS)}
        return cls.from_edges(run, meta, edges, ids, source)

    @classmethod
    def from_edges(
        cls,
        run_dir: str | Path,
        meta: dict[str, Any],
        edges: Iterable[tuple[str, str, float | None, bool]],
        ids: Iterable[str],
        source: str = "studio",
    ) -> RunQueue:
        """The queue over edges already read as (a, b, score, matched) (the studio has
        them): the folder's labels read and checked against the run's ids."""
        run = Path(run_dir)
        if not isinstance(meta.get("threshold"), int | float):
            raise SearchError(f"{run / RUN}: the run has no decision threshold to review against")
        a, b, score, matched = [], [], [], []
        for x, y, s, m in edges:
            try:
                value = float(s) if s is not None else float("nan")
            except (ValueError, TypeError) as exc:
                raise SearchError(f"{run / EDGES}: edge {x}-{y}: not a score ({exc})") from None
            x, y = pair_key(x, y)
            a.append(x)
            b.append(y)
            score.append(value)
            matched.append(bool(m))
        labels = read_labels(run / LABELS, set(a) | set(b) | set(ids))
        probability = meta.get("primary") == "pair"
        return cls(
            a, b, np.array(score, dtype=np.float64), np.array(matched, dtype=bool),
            float(meta["threshold"]), run / LABELS, probability, labels, source,
        )  # fmt: skip

    def _rank(self) -> np.ndarray:
        """Edge positions, most informative first."""
        d = distance(self.score, self.threshold, self.probability)
        near = d <= (NEAR_LOGIT if self.probability else NEAR_COSINE)
        rows = sorted(set(self.a) | set(self.b))
        at = {r: i for i, r in enumerate(rows)}
        m = np.flatnonzero(self.matched)
        ia = np.array([at[self.a[k]] for k in m], dtype=np.int64)
        ib = np.array([at[self.b[k]] for k in m], dtype=np.int64)
        bridge = np.zeros(len(d), dtype=bool)
        bridge[m[bridges(ia, ib, len(rows))]] = True
        tier = np.where(near, 0, np.where(bridge, 1, 2))
        self._reason = np.where(near, NEAR, np.where(bridge, BRIDGE, NEAR)).astype(object)
        return np.lexsort((d, tier))

    def next(self, n: int) -> list[QueueItem]:
        """Up to ``n`` unlabelled pairs, most informative first, no listing twice."""
        seen = set(self.labels)
        chosen = pick(self._order.tolist(), self.a, self.b, max(0, int(n)), seen)
        return [
            QueueItem(self.a[k], self.b[k], float(self.score[k]), self.threshold,
                      str(self._reason[k]))
            for k in chosen
        ]  # fmt: skip

    def record(self, label: Label) -> None:
        """Keep a verdict (appended to the run's labels file, when it has one)."""
        if self.labels_path is not None:
            append_label(self.labels_path, label)
        self.labels[label.pair] = label

    def progress(self) -> dict[str, Any]:
        """Labelled counts, the run's threshold; no F1 estimate (the run's scores are fixed)."""
        return progress_counts(self.labels, len(self.a), self.threshold, None)


def start_review(
    cfg: Any,
    dataset_path: str,
    out: str | Path,
    *,
    collection: str | None = None,
    fmt: str | None = None,
    batch: int = BATCH,
    k: int = 20,
    progress: ProgressFactory | None = None,
) -> ColdStart:
    """``search review CATALOGUE --out DIR``: a new review folder over the catalogue's
    collection (indexed first if missing), or an existing one reopened, refitted on the
    labels appended to it since, and rewritten."""
    from retrieval.data import open_dataset
    from search.collection import open_collection

    folder = Path(out)
    if (folder / RUN).is_file():
        queue = ColdStart.open(folder)  # fitted on every label in the folder
        queue.save()
        return queue
    if folder.is_dir() and any(folder.iterdir()):
        raise UsageError(f"{folder} holds files but no review: give a new or empty --out")
    dataset = open_dataset(dataset_path, format=fmt)
    if not dataset.self_match:
        raise UsageError(f"{dataset_path} is not a catalogue: search review matches one to itself")
    products = list(dataset.products())
    if len(products) < 2:
        raise UsageError(f"{dataset_path} has {len(products)} listing(s): nothing to pair")
    index, coll = open_collection(cfg, dataset, dataset_path, products, fmt, collection, None,
                                  progress)  # fmt: skip
    try:
        info = index.info(coll.name)
        assert info is not None
        encoders = list(info.meta.get("encoders") or [])
        vectors = [v.name for v in info.vectors]
        return ColdStart.create(
            index, coll.name, dataset.name, products, encoders, vectors, folder, k=k,
            batch=batch, progress=progress, info={"source": str(dataset_path)},
        )  # fmt: skip
    finally:
        index.close()
