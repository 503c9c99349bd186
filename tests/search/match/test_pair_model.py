"""The pair model applied to edges: its catalogue title features, columns and scores."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from helpers.match_edges import catalogue_edges

from rerank.pair_gbdt import PARALLEL_ROWS, predict_threads
from retrieval.errors import UsageError
from retrieval.types import Product
from search.match.edges import Edges, list_margins, reverse_index
from search.match.pair_model import (
    SHAP_COST,
    TITLE_FEATURES,
    columns,
    edge_features,
    margin_columns,
    pair_contributions,
    pair_scores,
    pick_columns,
    same_group,
)
from search.match.text_features import (
    TEXT_FEATURES,
    bigrams,
    char_grams,
    idf_of,
    text_features,
    tfidf,
)
from search.match.tuning.folds import folds
from training.match_pair import train_pair_models

PRODUCTS = [
    Product("a", "Sony WH1000XM3 headphones black", fields={"brand": "Sony"}),
    Product("b", "sony wh1000xm3 black headphones", fields={"brand": "SONY"}),
    Product("c", "Bose QC35 headphones black", fields={"brand": "Bose", "description": "quiet"}),
    Product("d", "black headphones", fields={"description": "quiet comfort"}),
]


def col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, TEXT_FEATURES.index(name)]


def test_char_grams_and_bigrams():
    assert char_grams(["ab"], (2,)) == [" a", "ab", "b "]
    assert bigrams(["a", "b", "c"]) == ["a b", "b c"]


def test_tfidf_rows_are_unit_length_and_empty_rows_zero():
    mat = tfidf([["a", "b"], [], ["a"]])
    norms = np.sqrt(np.asarray(mat.multiply(mat).sum(axis=1)).ravel())
    assert np.allclose(norms, [1.0, 0.0, 1.0])


def test_title_features_by_hand():
    src, dst = np.array([0, 0, 2]), np.array([1, 2, 3])
    x = text_features(src, dst, PRODUCTS)
    assert x.shape == (3, len(TEXT_FEATURES))
    # same words, other order: word cosine 1, bigrams differ, nothing unshared
    assert col(x, "word_cos")[0] == pytest.approx(1.0, abs=1e-5)
    assert col(x, "bigram_cos")[0] < 1.0
    assert col(x, "idf_jaccard")[0] == pytest.approx(1.0)
    assert col(x, "idf_unshared_max")[0] == 0.0
    # a vs c share only common words; the rarest unshared word is rarer than any shared
    idf = idf_of([set(p.title.lower().split()) for p in PRODUCTS])
    shared = {"headphones", "black"}
    assert col(x, "idf_shared_max")[1] == pytest.approx(max(idf[w] for w in shared))
    assert col(x, "idf_unshared_max")[1] > col(x, "idf_shared_max")[1]
    assert col(x, "char_cos")[0] > col(x, "char_cos")[1]
    # brand: case-folded equality, NaN when one is missing; description NaN unless both
    assert col(x, "brand_same").tolist()[:2] == [1.0, 0.0]
    assert math.isnan(col(x, "brand_same")[2])
    assert math.isnan(col(x, "desc_cos")[0]) and col(x, "desc_cos")[2] > 0


def test_edge_title_columns_leave_out_what_needs_a_list_or_changed_the_matcher():
    # an edge has no candidate list to take margins over, and part numbers lowered the
    # matcher's wdc-products F1 (README, Measured): a matcher file keeps its columns
    assert not [f for f in TITLE_FEATURES if f.endswith("_margin") or f.startswith("part_")]
    assert {"model_shared", "model_conflict", "char_tfidf"} <= set(TITLE_FEATURES)
    assert set(TITLE_FEATURES) <= set(columns(["text"]))


def test_seeds_of_the_pair_model_differ_and_are_averaged():
    es = catalogue_edges(groups=30)
    labelled = [(p.features(2), same_group(p.edges, p.products)) for p in folds(es, 3)]
    cols = columns(["text"])
    models = train_pair_models(labelled, cols, seeds=3)
    assert [m.num_trees() for m in models] == [models[0].num_trees()] * 3  # one early stop
    x = edge_features(es.edges, es.products, ["text"], 2)
    each = [m.predict(x) for m in models]
    assert not np.allclose(each[0], each[1])  # other row and feature samples
    rev = reverse_index(es.edges, es.n)
    mean = np.mean(each, axis=0)
    want = np.where(rev >= 0, (mean + mean[np.maximum(rev, 0)]) / 2, mean)
    assert pair_scores(models, x, es.edges, es.n) == pytest.approx(want, abs=1e-6)


def test_a_catalogue_of_edges_is_predicted_on_every_core_to_the_same_bit(monkeypatch):
    es = catalogue_edges(groups=30)
    labelled = [(p.features(2), same_group(p.edges, p.products)) for p in folds(es, 3)]
    models = train_pair_models(labelled, columns(["text"]), seeds=2)
    x = edge_features(es.edges, es.products, ["text"], 2)
    big = np.tile(x, (PARALLEL_ROWS // len(x) + 1, 1))
    m = len(big)
    edges = Edges(np.arange(m), np.arange(m) + m, {})  # no reverse edges: the plain mean
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert predict_threads(m) == 2 and predict_threads(len(x)) == 1
    one = [np.asarray(b.predict(big, num_threads=1), np.float64) for b in models]
    assert np.array_equal(
        pair_scores(models, big, edges, 2 * m), np.mean(one, 0).astype(np.float32)
    )
    rows = np.arange(PARALLEL_ROWS // SHAP_COST + 1)  # TreeSHAP rows count as many
    shap = sum(b.predict(big[rows], pred_contrib=True, num_threads=1) for b in models) / 2
    got = pair_contributions(models, big, edges, 2 * m, rows)
    assert all(np.array_equal(got[int(r)], shap[k]) for k, r in enumerate(rows))


def test_empty_edges_give_empty_features():
    es = catalogue_edges()
    empty = Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), {})
    assert text_features(empty.src, empty.dst, es.products).shape == (0, len(TEXT_FEATURES))


def test_list_margins_by_hand():
    # row 0 proposes 1 (0.9) and 2 (0.5); row 1 proposes 0 (0.8); row 2 proposes 0 (NaN)
    src, dst = np.array([0, 0, 1, 2]), np.array([1, 2, 0, 0])
    fwd, bwd = list_margins(src, dst, np.array([0.9, 0.5, 0.8, np.nan]), 3)
    # 0's best is 1: ahead of its runner-up by 0.4; 2 trails it by 0.4
    assert fwd[:2] == pytest.approx([0.4, -0.4])
    # row 1 and row 2 have no other edge to compare with
    assert math.isnan(fwd[2]) and math.isnan(fwd[3]) and math.isnan(bwd[0]) and math.isnan(bwd[1])
    # seen from 0's list: 1 is 0's best (0.8 over the runner-up 0.5); 2 (NaN: -1) trails 0.9
    assert bwd[2:] == pytest.approx([0.3, -1.9])


def test_edge_features_give_each_margin_column_its_source_column():
    es = catalogue_edges(groups=10)
    cols = columns(["text"])
    x = edge_features(es.edges, es.products, ["text"], 2)
    assert x.shape == (len(es.edges), len(cols))
    assert set(margin_columns(["text"])) <= set(cols)
    at = cols.index
    want = list_margins(es.edges.src, es.edges.dst, x[:, at("char_cos")], es.n)
    got = x[:, at("src_margin_char_cos")], x[:, at("dst_margin_char_cos")]
    for w, g in zip(want, got):
        assert np.allclose(w, g, equal_nan=True)


def test_a_matcher_saved_with_fewer_columns_reads_its_own():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert pick_columns(x, ["a", "b", "c", "d"], ["a", "b", "c", "d"]) is x
    assert pick_columns(x, ["a", "b", "c", "d"], ["d", "a"]).tolist() == x[:, [3, 0]].tolist()
    with pytest.raises(UsageError, match="does not compute"):
        pick_columns(x, ["a", "b", "c", "d"], ["a", "zz"])


HASH_SCRIPT = """
import hashlib, itertools, numpy as np
from retrieval.types import Product
from search.match.text_features import text_features
words = "sony black 128gb usb-c wireless pro max mini case cable 4k hdr red blue 64gb".split()
titles = [" ".join(w) for w in itertools.islice(itertools.permutations(words, 7), 0, 4000, 97)]
products = [Product(str(i), t) for i, t in enumerate(titles)]
src, dst = np.nonzero(~np.eye(len(products), dtype=bool))
print(hashlib.sha256(text_features(src, dst, products).tobytes()).hexdigest())
"""


def test_text_features_are_the_same_in_every_process():
    # a set's order follows PYTHONHASHSEED: sums over it must not (the figures of a
    # `search eval` would move with the process otherwise)
    import os
    import subprocess
    import sys

    out = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        got = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT], env=env, capture_output=True, text=True
        )
        assert got.returncode == 0, got.stderr[-2000:]
        out.append(got.stdout.strip())
    assert len(out[0]) == 64 and out[0] == out[1] == out[2]
