"""Lexical sparse vectors: normalisation, analyzers, BM25 weights."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.encoders import build_encoder
from retrieval.encoders.sparse import SparseEncoder, char_terms, normalize_title, word_terms
from retrieval.errors import UsageError
from retrieval.types import Product


def test_units_join_numbers_and_fold_case():
    assert normalize_title("Samsung A52 128 GB Hitam") == "samsung a52 128gb hitam"
    assert normalize_title("Kopi 250 gr") == "kopi 250gr"
    assert normalize_title("Crème 1,5 L") == "creme 1,5l"


def test_word_terms_keep_compounds_joined_and_split():
    assert word_terms("sharp lc-26dv24u tv/dvd") == [
        "sharp",
        "lc",
        "26dv24u",
        "lc26dv24u",
        "tv",
        "dvd",
        "tvdvd",
    ]


def test_char_terms_are_padded_ngrams():
    # " ab " -> 2-grams " a", "ab", "b " ; 3-grams " ab", "ab "
    assert char_terms("ab", 2, 3) == [" a", "ab", "b ", " ab", "ab "]


def test_query_weights_are_one_and_doc_weights_saturate():
    enc = SparseEncoder(analyzer="word")
    q = enc.embed("tv tv tv", query=True)
    assert len(q) == 1 and q.values[0] == pytest.approx(1.0)
    d1 = enc.embed("tv", query=False)
    d3 = enc.embed("tv tv tv", query=False)
    assert d1.values[0] < d3.values[0] < enc.k1 + 1  # BM25 saturation bound


def test_same_text_same_vector_and_sorted_indices():
    enc = SparseEncoder()
    a, b = enc.embed("iPhone 12 64GB"), enc.embed("iphone 12 64 gb")
    assert np.array_equal(a.indices, b.indices)
    assert np.all(np.diff(a.indices.astype(np.int64)) > 0)


def test_encode_batch_with_empty_title_and_fields():
    enc = build_encoder("sparse:word,fields=brand")
    out = enc.encode([Product("1", "", fields={}), Product("2", "tv", fields={"brand": "Sony"})])
    assert out.vectors["sparse"][0] is None
    assert len(out.vectors["sparse"][1]) == 2  # tv + sony
    assert enc.vectors()[0].sparse and enc.vectors()[0].idf


def test_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="analyzer"):
        build_encoder("sparse:bpe")
    with pytest.raises(UsageError, match="ngram"):
        build_encoder("sparse:char,ngram=x")
    with pytest.raises(UsageError, match="unknown encoder"):
        build_encoder("nope")
