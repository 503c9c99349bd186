"""One set of listings matched together: stored vectors, candidate edges, the scores
the rules read (stage 1, INB rounds, the pair model), and labels where there are any;
and its two constructors: a catalogue matched against itself (``self_edgeset``, every
vector fetched from the index, none encoded) and queries matched to a gallery
(``query_edgeset``, the queries encoded now).

``search match`` builds one over the whole catalogue; ``search eval`` one per split, or
one over the catalogue with a view per split (``search.match.tuning.splits``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retrieval.data.base import Dataset
from retrieval.index.base import VectorIndex
from retrieval.types import Hit, Product, ProgressFactory
from search.match.edges import Edges, answered_candidates, score_edges, search_candidates
from search.match.inb import blend_rounds
from search.match.matcher import Matcher
from search.match.pair_model import (
    PAIR,
    columns,
    edge_features,
    load_model,
    nearest_pairs,
    pair_contributions,
    pair_scores,
    pick_columns,
)
from search.match.rules import Rule, Sets, Verdicts, decide
from search.match.vectors import StoredVectors, build_store, fetch_vectors

log = logging.getLogger(__name__)
QUERY_PREFIX = "\x1fquery:"  # query rows' ids in a query/gallery store, apart from gallery ids


@dataclass
class EdgeSet:
    """Rows ``products`` (queries are ``queries``), their edges per INB round (0: none)."""

    index: VectorIndex
    collection: str
    products: list[Product]
    store: StoredVectors
    queries: np.ndarray
    weights: dict[str, float]
    k: int
    filters: list[dict[str, str] | None] | None = None
    allowed: np.ndarray | None = None
    rounds: dict[tuple[int, str, float], Edges] = field(default_factory=dict)
    edges: Edges | None = None
    batch_size: int = 256
    # reviewed pairs of rows (i, j) -> match or not, overriding the groups in targets()
    amend: dict[tuple[int, int], bool] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.products)

    def targets(self) -> dict[int, set[int]]:
        """Each grouped query row's group mates among the rows (amended by ``amend``)."""
        members: dict[str, list[int]] = {}
        for i, p in enumerate(self.products):
            if p.group is not None:
                members.setdefault(p.group, []).append(i)
        out = {
            int(i): set(members[g]) - {int(i)}
            for i in self.queries
            if (g := self.products[i].group) is not None
        }
        for (i, j), same in self.amend.items():  # a reviewer's verdict beats the groups
            for r, other in ((i, j), (j, i)):
                if r in out:
                    (out[r].add if same else out[r].discard)(other)
        return out

    def candidates(
        self,
        store: StoredVectors,
        names: list[str],
        vectors: list[dict[str, Any]] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(src, dst) of every query row's top ``k`` per vector of ``names``, asked of the
        index under this set's filters and gallery with the rows of ``store`` (or
        ``vectors``, one mapping per query row: blended ones)."""
        return search_candidates(
            self.index,
            self.collection,
            store,
            self.queries,
            names,
            self.k,
            allowed=self.allowed,
            filters=self.filters,
            vectors=vectors,
            batch_size=self.batch_size,
            progress=progress,
        )

    def search(self, progress: ProgressFactory | None = None) -> Edges:
        """Stage 1: candidates of every query row, scored by cosines and their mean."""
        tick = progress("candidates", len(self.queries)) if progress else None
        src, dst = self.candidates(self.store, list(self.weights), progress=tick)
        self.edges = score_edges(self.store, src, dst, self.weights)
        return self.edges

    def answered(self, answers: Sequence[Mapping[str, Sequence[Hit]]]) -> Edges:
        """``search()`` from answers the index already gave, one per query row: each
        vector's ranked hits under the same filters (``edges.answered_candidates``)."""
        src, dst = answered_candidates(
            self.store, self.queries, list(self.weights), self.k, answers, allowed=self.allowed
        )
        self.edges = score_edges(self.store, src, dst, self.weights)
        return self.edges

    def blended(
        self, rounds: int, score: str, threshold: float, progress: ProgressFactory | None = None
    ) -> Edges:
        """The edges after ``rounds`` rounds of neighbourhood blending (neighbours: edges
        whose ``score`` reaches ``threshold``)."""
        assert self.edges is not None, "search() first"
        key = (rounds, score, round(threshold, 6))
        if key not in self.rounds:
            tick = progress(f"blending x{rounds}", len(self.queries) * rounds) if progress else None
            self.rounds[key] = blend_rounds(self, self.edges, rounds, score, threshold, tick)
        return self.rounds[key]

    def features(self, neighbours: int) -> np.ndarray:
        """The pair model's feature matrix of the stage-1 edges."""
        assert self.edges is not None, "search() first"
        return edge_features(self.edges, self.products, list(self.weights), neighbours)

    def add_pair(self, boosters: Any, x: np.ndarray) -> None:
        """Score the stage-1 edges with a pair model, one booster or the mean of a list
        (the ``pair`` score)."""
        assert self.edges is not None, "search() first"
        self.edges.sims[PAIR] = pair_scores(boosters, x, self.edges, self.n)

    def score_pairs(
        self,
        matcher: Matcher,
        explain: tuple[float, int] | None = None,
        progress: ProgressFactory | None = None,
    ) -> dict[int, np.ndarray]:
        """Score the stage-1 edges with the matcher's pair model (its files checked as
        read); with ``explain`` = (threshold, pairs), return the feature contributions
        to the logit of the ``pairs`` pairs nearest the threshold, by edge index."""
        assert self.edges is not None and matcher.pair is not None
        cols, files = matcher.pair.columns, matcher.pair.files
        paths = matcher.pair.paths(matcher.base)
        boosters = [
            load_model(p, cols, files[i] if i < len(files) else None) for i, p in enumerate(paths)
        ]
        tick = progress("pair model", 1) if progress else None
        x = pick_columns(self.features(matcher.pair.neighbours), columns(list(self.weights)), cols)
        self.add_pair(boosters, x)
        if tick:
            tick(1)
        if explain is None or explain[1] <= 0:
            return {}
        rows = nearest_pairs(self.edges.sims[PAIR], self.edges, self.n, *explain)
        tick = progress(f"explaining {explain[1]} pairs", 1) if progress else None
        contrib = pair_contributions(boosters, x, self.edges, self.n, rows)
        if tick:
            tick(1)
        return contrib

    def edges_for(self, rule: Rule, progress: ProgressFactory | None = None) -> Edges:
        """The edges a rule decides on: blended when it asks for INB rounds."""
        assert self.edges is not None, "search() first"
        if rule.inb:
            t = rule.inb_threshold
            t = t if t is not None else rule.thresholds[rule.primary]
            return self.blended(rule.inb, rule.primary, t, progress)
        return self.edges

    def query_edges(self, rule: Rule, progress: ProgressFactory | None = None) -> Edges:
        """``edges_for(rule)``, only those whose source is a query when the rule decides
        each listing alone (no group consistency): all a query's decision reads."""
        edges = self.edges_for(rule, progress)
        if rule.groups != "none" or len(self.queries) == self.n:
            return edges
        mask = np.zeros(self.n, dtype=bool)
        mask[self.queries] = True
        return edges.select(mask[edges.src])

    def decide(
        self, rule: Rule, progress: ProgressFactory | None = None, verdicts: Verdicts | None = None
    ) -> Sets:
        """Each query row's matched rows under the rule (a reviewer's ``verdicts`` on
        pairs of rows kept whatever the scores say: ``rules.decide``)."""
        return decide(self.query_edges(rule, progress), rule, self.n, verdicts)


def query_filters(products: Sequence[Product], rows: np.ndarray, key: str | None) -> Any:
    """One payload filter per query row restricting candidates to its ``key`` value."""
    if key is None:
        return None
    return [{key: str(products[i].fields.get(key))} for i in rows]


def weights_for(names: Sequence[str], given: Mapping[str, float] | None = None) -> dict[str, float]:
    """Weights of the vectors in the mean: the given ones, else equal."""
    if given:
        return {n: float(given.get(n, 0.0)) for n in names}
    return dict.fromkeys(names, 1.0)


def self_edgeset(
    index: VectorIndex,
    collection: str,
    dataset: str,
    products: list[Product],
    matcher: Matcher,
    *,
    filter_key: str | None = None,
    progress: ProgressFactory | None = None,
) -> EdgeSet:
    """Listings matched against each other, with their stored vectors."""
    tick = progress("fetching vectors", len(products)) if progress else None
    store = fetch_vectors(
        index, collection, dataset, [p.id for p in products], matcher.vectors, progress=tick
    )
    rows = np.arange(len(products))
    flt = query_filters(products, rows, filter_key)
    return EdgeSet(index, collection, products, store, rows, matcher.weights, matcher.k, flt)


def query_edgeset(
    index: VectorIndex,
    collection: str,
    dataset: Dataset,
    matcher: Matcher,
    progress: ProgressFactory | None = None,
) -> EdgeSet:
    """Queries (encoded now) matched to the gallery (stored vectors)."""
    from retrieval.retriever import Retriever

    gallery = list(dataset.products())
    queries = [q.product for q in dataset.queries()]
    tick = progress("fetching vectors", len(gallery)) if progress else None
    g = fetch_vectors(
        index, collection, dataset.name, [p.id for p in gallery], matcher.vectors, progress=tick
    )
    retriever = Retriever.for_collection(index, collection)
    raw: list[dict[str, Any]] = []
    tick = progress("encoding queries", len(queries)) if progress else None
    for start in range(0, len(queries), 64):
        batch = queries[start : start + 64]
        enc = retriever.encode(batch, query=True)
        for i in range(len(batch)):
            raw.append({n: col[i] for n, col in enc.vectors.items() if col[i] is not None})
        if tick:
            tick(len(batch))
    ids = g.ids + [QUERY_PREFIX + q.id for q in queries]
    store = build_store(ids, g.raw + raw, matcher.vectors)
    products = gallery + queries
    allowed = np.r_[np.ones(len(gallery), bool), np.zeros(len(queries), bool)]
    rows = np.arange(len(gallery), len(products))
    return EdgeSet(
        index, collection, products, store, rows, matcher.weights, matcher.k, None, allowed
    )
