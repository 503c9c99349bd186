"""The edge sets a matcher is tuned on: each split matched within itself
(``split_sets``) or, at the density ``search match`` runs at, a view per split of one
search of the whole catalogue (``catalogue_sets``).

A split of a catalogue holds a fraction of its listings (15% for valid and test), so
matched within itself each listing sees few look-alikes: its nearest neighbours are
farther, ranks and local statistics mean something else, and thresholds tuned there
are too loose for ``search match`` over the whole catalogue. Here every listing is
searched once against the whole indexed catalogue (what ``search match`` does), and
each split is a view of that one edge set: its grouped listings are the queries, every
listing of the catalogue (other splits, unlabelled ones) a candidate. A match outside
the query's group, in any split, is a false match, as it will be in production.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from retrieval.data.base import Dataset
from retrieval.errors import UsageError
from retrieval.index.base import VectorIndex
from retrieval.types import Hit, ProgressFactory
from search.match.edgeset import EdgeSet, self_edgeset
from search.match.matcher import Matcher
from search.match.tuning.folds import fold_count

log = logging.getLogger(__name__)
AGAINST = ("split", "catalogue")  # what a split's listings are matched against when tuning


def catalogue_sets(
    index: VectorIndex,
    dataset: Dataset,
    collection: str,
    template: Matcher,
    splits: Sequence[str],
    progress: ProgressFactory | None = None,
) -> dict[str, EdgeSet]:
    """One edge set over every listing, and per split a view whose queries are the
    split's grouped listings."""
    products = list(dataset.products())
    row = {p.id: i for i, p in enumerate(products)}
    queries = {}
    for name in splits:
        rows = [row[q.product.id] for q in dataset.queries(name) if q.product.id in row]
        if not rows:
            raise UsageError(
                f"split {name!r} of {dataset.name} has no labelled listings: cannot tune a matcher"
            )
        queries[name] = np.array(sorted(rows), dtype=np.int64)
    whole = self_edgeset(index, collection, dataset.name, products, template, progress=progress)
    whole.search(progress)
    return {name: replace(whole, queries=q, rounds={}) for name, q in queries.items()}


def split_sets(
    index: VectorIndex,
    dataset: Dataset,
    collection: str,
    template: Matcher,
    splits: Sequence[str],
    tune_split: str,
    progress: ProgressFactory | None,
    answers: Mapping[str, Mapping[str, Sequence[Hit]] | None] | None = None,
) -> dict[str, EdgeSet]:
    """Each split's listings matched within the split (train searched deeper, to be cut
    into folds of the tuning split's size). ``answers``: listings already searched within
    their split with their stored vectors (``search eval``'s stage 1, by listing id, each
    vector's ranked answer): a split they all cover is not searched again."""
    k = template.k
    sets: dict[str, EdgeSet] = {}
    for name in splits:
        rows = [q.product for q in dataset.queries(name)]
        if not rows:
            raise UsageError(
                f"split {name!r} of {dataset.name} has no labelled listings: cannot tune a matcher"
            )
        deep = template
        if name == "train":  # searched deeper, then cut into folds the size of valid
            parts = max(2, fold_count(len(rows), sets[tune_split].n))
            deep = replace(template, k=k * parts)
        es = self_edgeset(
            index, collection, dataset.name, rows, deep, filter_key="split", progress=progress
        )
        given = _answers_of(es, answers) if answers is not None else None
        if given is not None:
            es.answered(given)
        else:
            es.search(progress)
        es.k = k
        sets[name] = es
    return sets


def _answers_of(
    es: EdgeSet, answers: Mapping[str, Mapping[str, Sequence[Hit]] | None]
) -> list[Mapping[str, Sequence[Hit]]] | None:
    """Each query row's answers, or None unless every row has one for each vector it
    would be searched with."""
    out = []
    for row in es.queries:
        own = answers.get(es.products[row].id)
        has = [n for n in es.weights if es.store.raw[row].get(n) is not None]
        if own is None or any(n not in own for n in has):
            return None
        out.append(own)
    return out
