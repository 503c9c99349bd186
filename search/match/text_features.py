"""Title features of candidate edges weighted by how rare each token is in the catalogue.

``rerank.pair_features`` looks at one pair at a time (word and trigram Jaccard, numbers,
model codes); a catalogue tells more: a shared rare token (a model code, a product
line) says "same product" far more than a shared common one ("black", "usb"). Over
the listings matched together (IDF counted over them, as the sparse cosine is):

- ``char_cos``: TF-IDF cosine of character 2-4-grams of the normalised titles (the
  strongest single title score of the wdc-products scripts);
- ``word_cos``: TF-IDF cosine of words; ``bigram_cos`` of word bigrams (word order);
- ``idf_jaccard``: IDF mass of the shared words over the IDF mass of both titles';
- ``idf_unshared_max`` / ``idf_unshared_min``: the rarest word one title has and the
  other lacks, the larger and the smaller of both sides' (a rare unshared word is a
  different product; a common one, a longer title);
- ``idf_shared_max``: the rarest word both titles share;
- ``desc_cos``: TF-IDF cosine of words of the ``description`` field (NaN where one
  listing has none); ``brand_same``: the ``brand`` fields agree (NaN where one is empty).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rerank.title_tokens import WORD_RE, normalize
from retrieval.encoders.base import SparseVec
from retrieval.types import Product
from search.match.vectors import tfidf_rows

TEXT_FEATURES = (
    "char_cos",
    "word_cos",
    "bigram_cos",
    "idf_jaccard",
    "idf_unshared_max",
    "idf_unshared_min",
    "idf_shared_max",
    "desc_cos",
    "brand_same",
)
CHUNK = 16384


def tokens(text: str) -> list[str]:
    """The normalised word tokens of a text."""
    return WORD_RE.findall(normalize(text or ""))


def char_grams(words: Sequence[str], sizes: Sequence[int] = (2, 3, 4)) -> list[str]:
    """Character n-grams of the words joined by spaces, padded at both ends."""
    text = f" {' '.join(words)} "
    return [text[i : i + n] for n in sizes for i in range(len(text) - n + 1)]


def bigrams(words: Sequence[str]) -> list[str]:
    """Consecutive word pairs."""
    return [f"{a} {b}" for a, b in zip(words, words[1:])]


def tfidf(docs: Sequence[Sequence[str]]) -> object:
    """L2-normalised TF-IDF rows (CSR) of token lists, IDF over these documents."""
    vocab: dict[str, int] = {}
    values: list[SparseVec | None] = []
    for doc in docs:
        if not doc:
            values.append(None)
            continue
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in doc), dtype=np.int64)
        idx, counts = np.unique(ids, return_counts=True)
        values.append(SparseVec(idx, (1.0 + np.log(counts)).astype(np.float32)))
    return tfidf_rows(values)


def pair_cosine(mat: object, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Row cosines of L2-normalised CSR rows for every pair, in chunks."""
    out = np.empty(len(src), dtype=np.float64)
    for a in range(0, len(src), CHUNK):
        s, d = src[a : a + CHUNK], dst[a : a + CHUNK]
        out[a : a + CHUNK] = np.asarray(mat[s].multiply(mat[d]).sum(axis=1)).ravel()  # type: ignore[index]
    return out


def idf_of(docs: Sequence[set[str]]) -> dict[str, float]:
    """Smooth IDF of every word over the documents (as ``tfidf_rows`` counts it)."""
    df: dict[str, int] = {}
    for doc in docs:
        for w in doc:
            df[w] = df.get(w, 0) + 1
    n = len(docs)
    return {w: float(np.log((1.0 + n) / (1.0 + c)) + 1.0) for w, c in df.items()}


def idf_overlaps(words: Sequence[set[str]], idf: dict[str, float], src, dst) -> np.ndarray:
    """Per edge: IDF Jaccard, rarest unshared word (max and min side), rarest shared word."""
    out = np.full((len(src), 4), np.nan)
    for e, (i, j) in enumerate(zip(src.tolist(), dst.tolist())):
        a, b = words[i], words[j]
        if not a or not b:
            continue
        shared = a & b
        both = math.fsum(idf[w] for w in a | b)  # fsum: exact in any set order (PYTHONHASHSEED)
        only_a = max((idf[w] for w in a - b), default=0.0)
        only_b = max((idf[w] for w in b - a), default=0.0)
        out[e] = (
            math.fsum(idf[w] for w in shared) / both,
            max(only_a, only_b),
            min(only_a, only_b),
            max((idf[w] for w in shared), default=0.0),
        )
    return out


def text_features(src: np.ndarray, dst: np.ndarray, products: Sequence[Product]) -> np.ndarray:
    """The ``TEXT_FEATURES`` columns of every edge (src[e], dst[e]) over ``products``."""
    titles = [tokens(p.title) for p in products]
    cols = [
        pair_cosine(tfidf([char_grams(t) for t in titles]), src, dst),
        pair_cosine(tfidf(titles), src, dst),
        pair_cosine(tfidf([bigrams(t) for t in titles]), src, dst),
    ]
    sets = [set(t) for t in titles]
    over = idf_overlaps(sets, idf_of(sets), src, dst)
    desc = [tokens(str(p.fields.get("description") or "")) for p in products]
    has = np.array([bool(d) for d in desc])
    dcos = pair_cosine(tfidf(desc), src, dst)
    dcos[~(has[src] & has[dst])] = np.nan
    brand = [" ".join(tokens(str(p.fields.get("brand") or ""))) for p in products]
    same = np.array(
        [float(brand[i] == brand[j]) if brand[i] and brand[j] else np.nan for i, j in zip(src, dst)]
    )
    return (
        np.column_stack([*cols, over, dcos, same])
        if len(src)
        else np.zeros((0, len(TEXT_FEATURES)))
    )
