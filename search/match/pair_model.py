"""The pair model applied to candidate edges (Shopee 2nd and 3rd places): the feature
columns of each edge, LightGBM's probability per edge, and the model's files. Fitting
it is ``training.match_pair``'s (``search.match.tuning.pair`` calls it).

The features: each edge's calibrated similarities, its neighbourhood both ways and its
titles.

Neighbourhood features of an edge (i, j), from the candidate edges themselves:
each side's mean and standard deviation of its top-``k`` mean similarities, the
edge's margin under each side's best, j's rank among i's candidates and i's rank
among j's (NaN when j never proposed i) and the mutual-neighbour flag. Title, number,
model-code and price agreement come from ``rerank.pair_features``. The probability
of both directions is averaged: that is the edge's ``pair`` score.

The model is a LightGBM text file (never a pickle) written atomically; its columns
are stored in the matcher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rerank.pair_features import FEATURES, MARGIN_SUFFIX, pair_features
from rerank.pair_gbdt import predict_threads
from retrieval.atomic import read_checked, write_checked
from retrieval.errors import UsageError
from retrieval.types import Candidate, Product
from search.match.edges import (
    CSLS,
    MEAN,
    Edges,
    list_margins,
    ranks,
    reverse_index,
    top_stats,
)
from search.match.text_features import TEXT_FEATURES, text_features

PAIR = "pair"
NEIGHBOURS = 5  # top-k of each side's neighbourhood statistics
# what a pair's titles, prices and hashes tell (the stage-1 columns are this module's own;
# the margins need a query's candidate list, which an edge has not; part numbers counted
# as model codes lowered wdc-products' valid F1 here, 0.778 -> 0.776, README Measured)
TITLE_FEATURES = tuple(
    f for f in FEATURES if not f.startswith(("stage1_", "part_")) and not f.endswith(MARGIN_SUFFIX)
)
NEIGHBOUR_FEATURES = (
    "shared_neighbours",
    "src_top_mean",
    "src_top_std",
    "dst_top_mean",
    "dst_top_std",
    "src_margin",
    "dst_margin",
    "rank_fwd",
    "rank_bwd",
    "mutual",
)


# columns also given against each end's other candidates (``edges.list_margins``): "the
# candidate that shares the model code best of i's list" says more than "shares one"
# (docs/fine-tune.md, item 7); every vector's cosine and the mean's too
LIST_MARGINS = (
    "char_cos",
    "word_cos",
    "bigram_cos",
    "idf_jaccard",
    "idf_shared_max",
    "model_shared",
    "model_conflict",
    "number_shared",
    "number_conflict",
    "title_jaccard",
    "char3_jaccard",
)


def columns(names: Sequence[str]) -> list[str]:
    """The model's feature columns for a collection's vector names."""
    per = [*names, MEAN]
    sims = [f"sim_{n}" for n in per] + [f"csls_{n}" for n in per]
    both = [f"rank_{d}_{n}" for n in names for d in ("fwd", "bwd")]
    base = sims + both + list(NEIGHBOUR_FEATURES) + list(TITLE_FEATURES) + list(TEXT_FEATURES)
    return base + margin_columns(names)


def margin_sources(names: Sequence[str]) -> list[str]:
    """The columns whose list margins the model reads: every vector's cosine, the mean
    cosine and the title columns of ``LIST_MARGINS``."""
    return [f"sim_{n}" for n in [*names, MEAN]] + list(LIST_MARGINS)


def margin_columns(names: Sequence[str]) -> list[str]:
    """The list-margin columns, each source's margin at both ends of the edge."""
    return [f"{end}_margin_{c}" for c in margin_sources(names) for end in ("src", "dst")]


def pick_columns(x: np.ndarray, have: Sequence[str], want: Sequence[str]) -> np.ndarray:
    """The columns ``want`` (a saved model's) of a feature matrix in ``have`` order: a
    matcher saved before a column was added reads the columns it was fitted on."""
    if list(have) == list(want):
        return x
    missing = [c for c in want if c not in have]
    if missing:
        raise UsageError(
            f"the matcher's pair model reads features this version does not compute "
            f"({', '.join(missing[:3])}); {REBUILD}"
        )
    at = {c: i for i, c in enumerate(have)}
    return x[:, [at[c] for c in want]]


def shared_neighbours(edges: Edges, n: int, k: int) -> np.ndarray:
    """Per edge: the Jaccard overlap of both ends' top-``k`` candidate lists (by mean)."""
    from scipy import sparse

    top = ranks(edges.src, edges.sims[MEAN]) <= k
    adj = sparse.csr_matrix(
        (np.ones(int(top.sum()), dtype=np.float32), (edges.src[top], edges.dst[top])), shape=(n, n)
    )
    common = np.asarray(adj[edges.src].multiply(adj[edges.dst]).sum(axis=1)).ravel()
    size = np.asarray(adj.sum(axis=1)).ravel()
    union = size[edges.src] + size[edges.dst] - common
    return np.divide(common, union, out=np.zeros(len(edges)), where=union > 0)


def vector_columns(edges: Edges, names: Sequence[str], n: int) -> list[np.ndarray]:
    """Cosines, their local scaling (``CSLS``) and, per vector, the rank of each end in
    the other's candidates."""
    rev = reverse_index(edges, n)
    sims, csls, both = [], [], []
    for name in [*names, MEAN]:
        sims.append(edges.sims[name].astype(np.float64))
        csls.append(edges.sims[CSLS + name].astype(np.float64))
        if name != MEAN:
            r = ranks(edges.src, edges.sims[name]).astype(np.float64)
            both += [r, np.where(rev >= 0, r[np.maximum(rev, 0)], np.nan)]
    return sims + csls + both


def edge_features(
    edges: Edges, products: Sequence[Product], names: Sequence[str], k: int = NEIGHBOURS
) -> np.ndarray:
    """The feature matrix of every edge, in ``columns(names)`` order."""
    n = len(products)
    cols = vector_columns(edges, names, n)
    cols.append(shared_neighbours(edges, n, 2 * k))
    mean = edges.sims[MEAN].astype(np.float64)
    m, sd, best = top_stats(edges.src, mean, n, k)
    rank = ranks(edges.src, mean).astype(np.float64)
    rev = reverse_index(edges, n)
    back = np.where(rev >= 0, rank[np.maximum(rev, 0)], np.nan)
    cols += [m[edges.src], sd[edges.src], m[edges.dst], sd[edges.dst]]
    cols += [best[edges.src] - mean, best[edges.dst] - mean, rank, back]
    cols.append((rev >= 0).astype(np.float64))
    if not len(edges):
        return np.zeros((0, len(columns(names))))
    text = text_features(edges.src, edges.dst, products)
    x = np.column_stack([*cols, title_features(edges, products), text])
    base = columns(names)[: x.shape[1]]
    margins = []
    for c in margin_sources(names):
        margins += list_margins(edges.src, edges.dst, x[:, base.index(c)], n)
    return np.column_stack([x, *margins])


def title_features(edges: Edges, products: Sequence[Product]) -> np.ndarray:
    """Title, number, model-code, hash and price agreement of every edge."""
    title = np.full((len(edges), len(TITLE_FEATURES)), np.nan)
    for e, (i, j) in enumerate(zip(edges.src.tolist(), edges.dst.tolist())):
        f = pair_features(products[i], Candidate(products[j], 0.0, 0))
        title[e] = [f[c] for c in TITLE_FEATURES]
    return title


def same_group(edges: Edges, products: Sequence[Product]) -> np.ndarray:
    """1 where both ends of an edge carry the same group label."""
    groups = [p.group for p in products]
    return np.array(
        [groups[i] is not None and groups[i] == groups[j] for i, j in zip(edges.src, edges.dst)],
        dtype=np.float64,
    )


def pair_scores(boosters: Any, x: np.ndarray, edges: Edges, n: int) -> np.ndarray:
    """The model's probability per edge (the mean over ``boosters``, one or a list),
    averaged with the reverse edge's where it exists."""
    if not len(edges):
        return np.zeros(0, dtype=np.float32)
    models = boosters if isinstance(boosters, list | tuple) else [boosters]
    threads = predict_threads(len(x))
    p = np.mean([np.asarray(b.predict(x, num_threads=threads), np.float64) for b in models], 0)
    rev = reverse_index(edges, n)
    both = np.where(rev >= 0, (p + p[np.maximum(rev, 0)]) / 2, p)
    return both.astype(np.float32)


EXPLAIN_PAIRS = 2000  # pairs whose contributions a match run keeps: TreeSHAP costs ~200 predicts
SHAP_COST = 200  # a TreeSHAP row, in predicted rows


def pair_contributions(
    boosters: Any, x: np.ndarray, edges: Edges, n: int, rows: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Each feature's contribution to the logit of the edges ``rows`` (all by default)
    and of their reverse edges: LightGBM ``pred_contrib`` (one column per feature, then
    the bias), averaged over ``boosters`` and with the reverse edge's exactly as
    ``pair_scores`` averages the probabilities, so a row sums to the mean of the edge's
    raw scores (its logit) over the seeds and both directions. By edge index."""
    if not len(edges):
        return {}
    rev = reverse_index(edges, n)
    want = np.arange(len(edges)) if rows is None else np.asarray(rows, dtype=np.int64)
    back = rev[want]
    todo = np.union1d(want, back[back >= 0])
    models = boosters if isinstance(boosters, list | tuple) else [boosters]
    c = np.zeros((len(todo), x.shape[1] + 1))
    threads = predict_threads(len(todo) * SHAP_COST)
    for b in models:
        c += np.asarray(b.predict(x[todo], pred_contrib=True, num_threads=threads), np.float64)
    c /= len(models)
    at = {int(e): k for k, e in enumerate(todo.tolist())}
    out: dict[int, np.ndarray] = {}
    for e in todo.tolist():
        r = int(rev[e])
        out[e] = (c[at[e]] + c[at[r]]) / 2 if r >= 0 else c[at[e]]
    return out


def nearest_pairs(
    score: np.ndarray, edges: Edges, n: int, threshold: float, pairs: int
) -> np.ndarray:
    """The edges of the ``pairs`` pairs whose ``score`` (a probability) is nearest
    ``threshold`` in logit space: those a reviewer asks about first."""
    if not len(edges) or pairs <= 0:
        return np.zeros(0, dtype=np.int64)
    p = np.clip(score.astype(np.float64), 1e-9, 1 - 1e-9)
    t = min(max(threshold, 1e-9), 1 - 1e-9) if np.isfinite(threshold) else 1 - 1e-9
    far = np.abs(np.log(p / (1 - p)) - np.log(t / (1 - t)))
    lo, hi = np.minimum(edges.src, edges.dst), np.maximum(edges.src, edges.dst)
    key = lo.astype(np.int64) * n + hi
    order = np.lexsort((key, far))
    _, first = np.unique(key[order], return_index=True)
    chosen = key[order][np.sort(first)][:pairs]
    return np.flatnonzero(np.isin(key, chosen))


REBUILD = "run `search eval` again to write the matcher and its pair model"


def save_models(boosters: Sequence[Any], paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One LightGBM text model per booster, each written whole or not at all; their
    sha256 and size records (for the matcher) in order."""
    return [save_model(b, p) for b, p in zip(boosters, paths, strict=True)]


def save_model(booster: Any, path: str | Path) -> dict[str, Any]:
    """The booster as a LightGBM text model, written whole or not at all; its record."""
    return write_checked(path, booster.model_to_string())


def load_model(path: str | Path, cols: Sequence[str], record: Any = None) -> Any:
    """Read a LightGBM text model whose bytes match ``record`` (checked before LightGBM
    parses them: a damaged model crashes it natively); a missing file, a mismatch or
    other columns are one-line errors."""
    from rerank.pair_gbdt import import_lightgbm

    lgb = import_lightgbm()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"the matcher's pair model {path} is missing; {REBUILD}")
    text = read_checked(path, record, REBUILD).decode("utf-8")
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise UsageError(f"cannot read the pair model {path}: {exc}") from exc
    if booster.feature_name() != list(cols):
        raise UsageError(f"the pair model {path} reads other features than its matcher names")
    return booster


def nan_to_none(value: float) -> float | None:
    """A float for JSON: NaN becomes None."""
    return None if math.isnan(value) else value
