"""Lexical sparse vectors stored as Qdrant sparse vectors (IDF applied inside Qdrant).

Product titles are full of model numbers and units (``lc-26dv24u``, ``128GB``) that
dense text models blur; lexical matching keeps them. Two analyzers:

- ``char`` (default): character n-grams inside word boundaries (``ngram=2-4``), robust
  to typos and to ``lc-26dv24u`` / ``lc26dv24u`` spellings;
- ``word``: word tokens, plus hyphen-joined compounds (``lc-26dv24u`` -> ``lc``,
  ``26dv24u``, ``lc26dv24u``).

Both normalise units (``128 gb`` -> ``128gb``). Document weights are BM25-saturated term
frequencies; query weights are 1 per distinct term; Qdrant's IDF modifier supplies
the IDF from the collection itself, so nothing is fitted and indexing streams.
Term ids are CRC32 hashes of the terms (stable across machines and runs).
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from retrieval.encoders.base import Encoded, SparseVec, VectorSpec, register_encoder
from retrieval.errors import UsageError
from retrieval.types import Product, product_text

ANALYZERS = ("char", "word")
_UNITS = (
    "gb|tb|mb|kb|ghz|mhz|hz|mah|mm|cm|km|m|ml|l|ltr|kg|gr|g|mg|oz|lb|lbs|in|inch|ft|w|kw|v|"
    "mp|pcs|pc|x|pk|pack|gram|liter|watt|volt|cc"
)
_UNIT_RE = re.compile(rf"(?<![a-z0-9])(\d+(?:[.,]\d+)?)\s+({_UNITS})(?![a-z0-9])")
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-/.][a-z0-9]+)*")


def normalize_title(text: str) -> str:
    """Lower-case, fold accents and join numbers to their units (``128 GB`` -> ``128gb``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower()
    return _UNIT_RE.sub(r"\1\2", text)


def word_terms(text: str) -> list[str]:
    """Word tokens of a normalised title, with joined forms of hyphenated compounds."""
    terms: list[str] = []
    for tok in _TOKEN_RE.findall(text):
        parts = re.split(r"[-/.]", tok)
        terms.extend(p for p in parts if p)
        if len(parts) > 1:
            terms.append("".join(parts))
    return terms


def char_terms(text: str, lo: int, hi: int) -> list[str]:
    """Character n-grams of each word padded with spaces (scikit-learn's ``char_wb``)."""
    terms: list[str] = []
    for word in re.findall(r"[a-z0-9]+", text):
        padded = f" {word} "
        for n in range(lo, hi + 1):
            if n > len(padded):
                break
            terms.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return terms


class SparseEncoder:
    """Hashed lexical terms with BM25 document weights; IDF comes from Qdrant."""

    def __init__(
        self,
        analyzer: str = "char",
        ngram: str = "2-4",
        k1: float = 1.2,
        b: float = 0.75,
        avg_len: float | None = None,
        name: str = "sparse",
        fields: str = "",
    ) -> None:
        if analyzer not in ANALYZERS:
            raise UsageError(f"unknown sparse analyzer {analyzer!r}; known: {', '.join(ANALYZERS)}")
        try:
            lo, _, hi = ngram.partition("-")
            self.ngram = (int(lo), int(hi or lo))
        except ValueError as exc:
            raise UsageError(f"bad ngram range {ngram!r}: expected e.g. 2-4") from exc
        if not 1 <= self.ngram[0] <= self.ngram[1]:
            raise UsageError(f"bad ngram range {ngram!r}")
        self.analyzer = analyzer
        self.k1, self.b = float(k1), float(b)
        # Typical title length in terms; BM25 length normalisation is relative to it.
        self.avg_len = float(avg_len) if avg_len else (60.0 if analyzer == "char" else 10.0)
        self.name = name
        self.fields = [f for f in fields.split("+") if f]
        self.spec = "sparse"

    def vectors(self) -> list[VectorSpec]:
        return [VectorSpec(self.name, None, distance="dot", idf=True)]

    def terms(self, text: str) -> list[str]:
        """The analyzer's terms of a raw text."""
        norm = normalize_title(text)
        if self.analyzer == "char":
            return char_terms(norm, *self.ngram)
        return word_terms(norm)

    def _text(self, product: Product) -> str:
        return product_text(product, self.fields)

    def embed(self, text: str, *, query: bool = False) -> SparseVec | None:
        """One text as a sparse vector (None when it has no terms)."""
        counts = Counter(self.terms(text))
        if not counts:
            return None
        ids: dict[int, float] = {}
        length = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
        for term, tf in counts.items():
            key = zlib.crc32(term.encode())
            weight = 1.0 if query else tf * (self.k1 + 1) / (tf + norm)
            ids[key] = ids.get(key, 0.0) + weight
        indices = np.fromiter(ids.keys(), dtype=np.int64, count=len(ids))
        values = np.fromiter(ids.values(), dtype=np.float32, count=len(ids))
        order = np.argsort(indices)
        return SparseVec(indices[order].astype(np.uint32), values[order])

    def encode(self, products: Sequence[Product], *, query: bool = False) -> Encoded:
        return Encoded({self.name: [self.embed(self._text(p), query=query) for p in products]})


@register_encoder("sparse")
def _sparse(model: str | None = None, **options: str) -> SparseEncoder:
    return SparseEncoder(analyzer=model or "char", **options)
