"""A review queue for a catalogue no one has grouped (``search review CATALOGUE``): the
pair model and its threshold learnt from the reviewer's labels alone.

The candidates are stage 1's: every listing's neighbours asked of the index with its
stored vectors (``self_edgeset``, nothing encoded again), the pair model's feature
columns computed once. The first batch is spread over the score range: each listing's
``k`` nearest candidates by the mean cosine (the search's depth; a listing has more, the
union of each vector's ``k``) cut into equal-count score bins, one pair from each, no
listing twice. Far candidates are drawn too: a model that never saw one gives the many
far edges of a catalogue the odds of the near ones it was fitted on (on wdc-products,
drawing from each listing's nearest three left the valid split's pair AP at 0.11-0.29
after 100-300 labels, against 0.29-0.48 from the nearest 20; an earlier ``review_bench.py``). After every ``batch`` labels (match / not a
match; skips are kept but teach nothing) a bootstrap ensemble of small LightGBM models
is fitted on the labelled pairs (``training.match_review``), every candidate pair is
scored (the seeds' mean, both directions averaged, as ``search match`` scores them) and
the threshold is the one that maximises the F1 the probabilities themselves expect
(each listing's expected true matches among its candidates). The next batch is the
pairs the models are least sure of (closest to the threshold, widest spread between
seeds), one in ``1 / EXPLORE`` still spread over the score range.

With a folder it writes what the studio opens and ``search match --matcher`` applies:
``run.json`` (kind ``review``), ``listings.jsonl``, ``edges.jsonl`` (the current
scores), ``labels.jsonl`` (appended as labels come) and ``matcher.json`` beside its
LightGBM text files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.index.base import VectorIndex
from retrieval.types import Product, ProgressFactory
from search.match.edges import MEAN, ranks
from search.match.edgeset import self_edgeset, weights_for
from search.match.labels import Label, append_label, label_pairs, read_labels
from search.match.matcher import Matcher, PairModel
from search.match.pair_model import NEIGHBOURS, PAIR, pair_scores
from search.match.queue import (
    NEAR,
    SPREAD,
    UNSURE,
    QueueItem,
    pick,
    progress_counts,
    stratified,
)
from search.match.review_folder import PAIR_FILE, Candidates, open_review, write_state
from search.match.rules import Rule
from training.match_review import SEEDS, expected_f1, fit_label_models

log = logging.getLogger(__name__)
BATCH = 20  # labels between two fits
EXPLORE = 0.2  # share of a batch still spread over the score range
LABELS = "labels.jsonl"


@dataclass
class Fit:
    """One fit of the label models: the models, each pair's probability and the seeds'
    spread, each directed edge's probability, the threshold and the F1 it expects."""

    boosters: list[Any]
    p: np.ndarray
    spread: np.ndarray
    sims: np.ndarray
    threshold: float
    f1: float


class ColdStart:
    """A queue over one catalogue's candidate pairs (``Candidates``); ``pool`` marks the
    listings it may ask about (default all); ``out`` the folder it keeps (none: nothing
    written). Existing labels in ``out`` are read and fitted on at once."""

    def __init__(
        self,
        cands: Candidates,
        out: Path | None = None,
        *,
        batch: int = BATCH,
        pool: np.ndarray | None = None,
        seed: int = 0,
        info: dict[str, Any] | None = None,
        write: bool = True,
    ) -> None:
        self.cands, self.out, self.batch, self.seed = cands, out, max(1, batch), seed
        self.info = dict(info or {})
        edges, n, ids = cands.edges, cands.n, [p.id for p in cands.products]
        lo, hi = np.minimum(edges.src, edges.dst), np.maximum(edges.src, edges.dst)
        keys, self.pair_of = np.unique(lo.astype(np.int64) * n + hi, return_inverse=True)
        self.first_edge = np.zeros(len(keys), dtype=np.int64)
        self.first_edge[self.pair_of[::-1]] = np.arange(len(self.pair_of))[::-1]
        rows = (keys // n, keys % n)
        self.a = [min(ids[i], ids[j]) for i, j in zip(*rows)]
        self.b = [max(ids[i], ids[j]) for i, j in zip(*rows)]
        self.index = {(x, y): k for k, (x, y) in enumerate(zip(self.a, self.b))}
        self.cosine = np.zeros(len(keys))
        np.maximum.at(self.cosine, self.pair_of, edges.sims[MEAN].astype(np.float64))
        allowed = np.ones(n, dtype=bool) if pool is None else np.asarray(pool, bool)
        self.allowed = allowed[rows[0]] & allowed[rows[1]]
        near = np.zeros(len(keys), dtype=bool)
        near[self.pair_of[ranks(edges.src, edges.sims[MEAN]) <= cands.k]] = True
        self.first = np.flatnonzero(self.allowed & near)
        self.labels: dict[tuple[str, str], Label] = {}
        self.boosters: list[Any] = []
        self.p: np.ndarray | None = None
        self.spread = np.zeros(len(keys))
        self.threshold: float = 0.5
        self.f1: float | None = None
        self.fresh = 0  # labels since the last fit
        if out is not None:
            self.labels.update(read_labels(out / LABELS, set(ids)))
        self.refit(write=write)

    @classmethod
    def create(
        cls,
        index: VectorIndex,
        collection: str,
        dataset: str,
        products: list[Product],
        encoders: Sequence[str],
        vectors: Sequence[str],
        out: Path | None,
        *,
        k: int = 20,
        progress: ProgressFactory | None = None,
        **kwargs: Any,
    ) -> ColdStart:
        """Search the catalogue's candidates in the index (its stored vectors, nothing
        encoded), compute their features, keep them in ``out`` and build the queue; the
        index is not needed afterwards."""
        template = Matcher(list(encoders), list(vectors), weights_for(vectors), [], "", k)
        es = self_edgeset(index, collection, dataset, products, template, progress=progress)
        es.search(progress)
        tick = progress("pair features", 1) if progress else None
        x = es.features(NEIGHBOURS)
        if tick:
            tick(1)
        assert es.edges is not None
        cands = Candidates(products, es.edges, x, list(encoders), dict(es.weights), collection, k)
        if out is not None:
            cands.save(out)
        info = {"dataset": dataset, **kwargs.pop("info", {})}
        return cls(cands, out, info=info, **kwargs)

    @classmethod
    def open(cls, folder: str | Path) -> ColdStart:
        """The queue of a review folder, its labels fitted on; nothing rewritten."""
        out = Path(folder)
        cands, meta = open_review(out)
        settings = meta["review"]
        info = {"dataset": meta.get("dataset"), "source": meta.get("source")}
        return cls(
            cands, out, batch=int(settings.get("batch", BATCH)),
            seed=int(settings.get("seed", 0)), info=info, write=False,
        )  # fmt: skip

    def next(self, n: int) -> list[QueueItem]:
        """Up to ``n`` unlabelled candidate pairs: spread over the score range until a
        model exists, then mostly those it is least sure of (same answer until a label
        is recorded)."""
        n, seen = max(0, int(n)), set(self.labels)
        rng = np.random.default_rng([self.seed, len(self.labels)])
        spread = stratified(self.cosine, self.first, self.batch, rng)
        if self.p is None:
            chosen = pick(spread, self.a, self.b, n, seen)
            return [self._item(k, SPREAD) for k in chosen]
        allowed = np.flatnonzero(self.allowed)
        d = np.abs(self.p[allowed] - self.threshold) / max(self.threshold, 1 - self.threshold)
        unsure = allowed[np.argsort(d - 2 * self.spread[allowed], kind="stable")]
        chosen = pick(unsure[: 50 * n + 100].tolist(), self.a, self.b, n - round(n * EXPLORE), seen)
        more = pick(spread, self.a, self.b, n - len(chosen), seen | self._pairs(chosen))
        return [self._item(k, UNSURE if self.spread[k] > 0.1 else NEAR) for k in chosen] + [
            self._item(k, SPREAD) for k in more
        ]

    def _pairs(self, chosen: Sequence[int]) -> set[tuple[str, str]]:
        return {(self.a[k], self.b[k]) for k in chosen}

    def _item(self, k: int, reason: str) -> QueueItem:
        score = self.cosine[k] if self.p is None else self.p[k]
        return QueueItem(self.a[k], self.b[k], float(score), self.threshold, reason)

    def record(self, label: Label, *, refit: bool = True) -> None:
        """Keep a verdict (appended to ``labels.jsonl`` first); with ``refit``, refit after
        every ``batch``, else ``refit_due`` says when (the studio refits in the background)."""
        if self.out is not None:
            append_label(self.out / LABELS, label)
        self.labels[label.pair] = label
        if label.verdict != "skip":
            self.fresh += 1
        if refit and self.refit_due():
            self.refit()

    def refit_due(self) -> bool:
        """Whether ``batch`` verdicts came since the last fit."""
        return self.fresh >= self.batch

    def training_rows(
        self, labels: dict[tuple[str, str], Label] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The directed edges of every labelled candidate pair: rows, y, pair index."""
        pairs, y = label_pairs(self.labels if labels is None else labels)
        want = np.full(len(self.a), -1, dtype=np.int64)
        for (a, b), v in zip(pairs, y.tolist()):
            k = self.index.get((a, b))
            if k is not None:
                want[k] = v
        label = want[self.pair_of]
        rows = np.flatnonzero(label >= 0)
        return rows, label[rows], self.pair_of[rows]

    def refit(self, write: bool = True) -> bool:
        """Fit the models on the labels (both verdicts needed), rescore, rethreshold and
        (``write``) rewrite the folder; False while one verdict is still missing. In three
        steps for a caller that fits off its lock: ``take_labels``, ``fit``, ``apply``."""
        fit = self.fit(self.take_labels())
        if fit is not None:
            self.apply(fit)
        if write:
            self.save()
        return fit is not None

    def take_labels(self) -> dict[tuple[str, str], Label]:
        """The labels a fit starts from (a copy); verdicts after it count for the next."""
        self.fresh = 0
        return dict(self.labels)

    def save(self) -> None:
        """Rewrite the folder (run files, current scores, matcher) from the current fit;
        nothing is fitted again."""
        if self.out is None:
            return
        extra = {"estimated_f1": self.f1, "review": self.cands.settings(self.batch, self.seed)}
        info = {"dataset": self.info.get("dataset"), "source": self.info.get("source")}
        write_state(self.out, self.cands, self.matcher(), self.boosters, self.threshold,
                    extra, info)  # fmt: skip

    def fit(self, labels: dict[tuple[str, str], Label]) -> Fit | None:
        """The models fitted on ``labels`` and every candidate's scores; nothing of the
        queue changes (None while one verdict is still missing)."""
        rows, y, groups = self.training_rows(labels)
        if not len(y) or y.min() == y.max():
            return None
        c = self.cands
        boosters = fit_label_models(
            c.x[rows], y, groups, c.columns, seeds=SEEDS, first_seed=self.seed
        )
        per = np.array([pair_scores(b, c.x, c.edges, c.n) for b in boosters], np.float64)
        sims = per.mean(axis=0).astype(np.float32)
        threshold, f1 = expected_f1(c.edges.src, sims.astype(float), c.n)
        log.info(
            "cold start: %d labelled pairs, threshold %.2f, expected F1 %.3f",
            len(set(groups.tolist())), threshold, f1,
        )  # fmt: skip
        p, spread = per.mean(axis=0)[self.first_edge], per.std(axis=0)[self.first_edge]
        return Fit(boosters, p, spread, sims, threshold, f1)

    def apply(self, fit: Fit) -> None:
        """Make ``fit`` the queue's current models and scores."""
        self.boosters, self.p, self.spread = fit.boosters, fit.p, fit.spread
        self.cands.edges.sims[PAIR] = fit.sims
        self.threshold, self.f1 = fit.threshold, fit.f1

    def matcher(self) -> Matcher | None:
        """The matcher of the current models (``pair`` >= the threshold); None before."""
        if not self.boosters:
            return None
        c = self.cands
        rule = Rule(PAIR, {PAIR: self.threshold}, PAIR)
        info = {
            "dataset": self.info.get("dataset"),
            "collection": c.collection,
            "tuned_on": "labels",
            "tuned_against": "catalogue",
            "tuned_listings": c.n,
        }
        pair = PairModel(PAIR_FILE, c.columns, NEIGHBOURS, len(self.boosters))
        return Matcher(c.encoders, list(c.weights), dict(c.weights), [rule], PAIR, c.k, pair, info)

    def progress(self) -> dict[str, Any]:
        """Labelled counts, the current threshold and the F1 its probabilities expect."""
        return progress_counts(self.labels, len(self.a), self.threshold, self.f1)
