"""Features of a (query, candidate) pair for the ``pair-gbdt`` reranker, as pure functions.

Stage 1 leaves per-vector similarities (``sim_<vector>``) and the stage-1 score and
rank on each candidate; this module adds what titles (read by ``rerank.title_tokens``),
prices and hashes tell: word and character-trigram overlap, agreement of numbers with units (``128gb`` vs
``256gb``) and of model codes (``lc-26dv24u``), the pHash Hamming distance, the
length ratio, the brand (first word), the price ratio, and a char n-gram TF-IDF cosine
whose IDF comes from the query's own candidate list (n-grams every candidate shares,
the brand or the product type, weigh little; the model number that tells siblings
apart weighs much). A value that cannot be computed is NaN; LightGBM learns where NaN
goes.

The trees score each pair on its own, so a pair's features also say how it stands
against the rest of its query's list: for the agreement features in ``MARGINS``, the
``<feature>_margin`` is its value minus the best value among the other candidates
(positive only for the one candidate that agrees best). Digits-only part numbers
(``010-00715-20`` = ``0100071520``, a UPC) are compared on their own (``part_*``). On Abt-Buy's stage-1 siblings
(``cli-8c`` vs ``cli-8pc``, ``gld4355rfs`` vs ``gld4355rf``) the absolute values differ
by one code, which the trees weighed less than stage 1's rank; the margin makes "the only
candidate sharing the code" one split (README, Measured).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from rerank.title_tokens import (
    char_ngrams,
    jaccard,
    model_agreement,
    normalize,
    numbers,
    overlap,
    part_numbers,
    unit_agreement,
    wb_ngrams,
    words,
)
from retrieval.types import Candidate, Product

#: Bumped whenever a feature's definition changes, so old model files refuse to load.
FEATURE_VERSION = 3
#: The features this module computes, in model column order (``sim_*`` columns come first
#: and depend on the collection's vectors).
FEATURES: tuple[str, ...] = (
    "stage1_score",
    "stage1_rank",
    "stage1_gap",
    "stage1_ratio",
    "title_jaccard",
    "char3_jaccard",
    "num_unit_shared",
    "num_unit_conflict",
    "number_shared",
    "number_conflict",
    "model_shared",
    "model_conflict",
    "model_substring",
    "phash_hamming",
    "len_ratio",
    "same_brand",
    "price_ratio",
    "char_tfidf",
    "part_shared",
    "part_conflict",
)
#: Features whose value is also given against the best other candidate of the query's
#: list (``<name>_margin``), appended to ``FEATURES`` in this order.
MARGINS: tuple[str, ...] = (
    "model_shared",
    "model_substring",
    "model_conflict",
    "char_tfidf",
    "title_jaccard",
    "char3_jaccard",
    "number_shared",
    "number_conflict",
    "part_shared",
    "part_conflict",
)
MARGIN_SUFFIX = "_margin"
FEATURES += tuple(f"{name}{MARGIN_SUFFIX}" for name in MARGINS)
SIM_PREFIX = "sim_"
#: Columns holding the scores of stacked rerankers (``rerank.stacking``), after ``sim_*``.
STACK_PREFIX = "stack"
NAN = math.nan


def phash_distance(a: object, b: object) -> float:
    """Hamming distance of two hex perceptual hashes; NaN if either is missing or bad."""
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b or len(a) != len(b):
        return NAN
    try:
        return float((int(a, 16) ^ int(b, 16)).bit_count())
    except ValueError:
        return NAN


def _price(value: object) -> float | None:
    try:
        price = float(str(value).replace(",", "").replace("$", "").strip())
    except (TypeError, ValueError):
        return None
    return price if price > 0 and math.isfinite(price) else None


def ratio(a: float | None, b: float | None) -> float:
    """min / max of two positive numbers; NaN if either is missing."""
    if not a or not b:
        return NAN
    return min(a, b) / max(a, b)


def pair_features(query: Product, candidate: Candidate) -> dict[str, float]:
    """Every feature of one pair: the candidate's ``sim_*``, ``stack*`` and stage-1
    features as stage 1 (and stacked rerankers) left them, plus the title, price and hash features computed here.
    ``stage1_gap`` / ``stage1_ratio`` need the whole list: see ``list_features``."""
    feats = {
        k: float(v)
        for k, v in candidate.features.items()
        if k.startswith((SIM_PREFIX, STACK_PREFIX))
    }
    cand = candidate.product
    qt, ct = query.title or "", cand.title or ""
    feats["stage1_score"] = float(candidate.features.get("stage1_score", candidate.stage1_score))
    feats["stage1_rank"] = float(candidate.features.get("stage1_rank", candidate.stage1_rank))
    feats["stage1_gap"] = NAN
    feats["stage1_ratio"] = NAN
    feats["title_jaccard"] = jaccard(words(qt), words(ct))
    feats["char3_jaccard"] = jaccard(char_ngrams(qt), char_ngrams(ct))
    feats["num_unit_shared"], feats["num_unit_conflict"] = unit_agreement(qt, ct)
    feats["number_shared"], feats["number_conflict"] = overlap(numbers(qt), numbers(ct))
    feats["part_shared"], feats["part_conflict"] = overlap(part_numbers(qt), part_numbers(ct))
    shared, conflict, substring = model_agreement(qt, ct)
    feats["model_shared"], feats["model_conflict"], feats["model_substring"] = (
        shared,
        conflict,
        substring,
    )
    feats["phash_hamming"] = phash_distance(
        query.fields.get("image_phash"), cand.fields.get("image_phash")
    )
    qw, cw = normalize(qt).split(), normalize(ct).split()
    feats["len_ratio"] = ratio(len(qt.strip()), len(ct.strip()))
    feats["same_brand"] = float(qw[0] == cw[0]) if qw and cw else NAN
    feats["price_ratio"] = ratio(
        _price(query.fields.get("price")), _price(cand.fields.get("price"))
    )
    feats["char_tfidf"] = NAN
    feats.update((name + MARGIN_SUFFIX, NAN) for name in MARGINS)
    return feats


def list_tfidf(query: str, candidates: Sequence[str]) -> list[float]:
    """Cosine of sublinear-TF char 2-4-gram vectors of the query and each candidate, with
    the IDF taken over the query and its candidates (``ln((1+N)/(1+df)) + 1``)."""
    docs = [wb_ngrams(t) for t in (query, *candidates)]
    df: Counter[str] = Counter(g for d in docs for g in d)
    n = len(docs)
    idf = {g: math.log((1 + n) / (1 + c)) + 1.0 for g, c in df.items()}

    def vec(d: Counter[str]) -> dict[str, float]:
        v = {g: (1.0 + math.log(c)) * idf[g] for g, c in d.items()}
        norm = math.sqrt(sum(x * x for x in v.values()))
        return {g: x / norm for g, x in v.items()} if norm else {}

    qv = vec(docs[0])
    out = []
    for d in docs[1:]:
        cv = vec(d)
        out.append(sum(x * cv.get(g, 0.0) for g, x in qv.items()) if qv and cv else NAN)
    return out


def list_features(
    rows: Sequence[dict[str, float]], query: str | None = None, titles: Sequence[str] = ()
) -> None:
    """Fill the features that need the query's whole list: the stage-1 score's gap to
    the top score and its ratio (so they do not depend on K), given the titles the
    list-IDF char TF-IDF cosine, and the ``MARGINS`` (``margins``)."""
    if not rows:
        return
    if query is not None and len(titles) == len(rows):
        for r, value in zip(rows, list_tfidf(query, titles)):
            r["char_tfidf"] = value
    top = max(r["stage1_score"] for r in rows)
    for r in rows:
        r["stage1_gap"] = top - r["stage1_score"]
        r["stage1_ratio"] = r["stage1_score"] / top if top > 0 else NAN
    for name in MARGINS:
        for r, value in zip(rows, margins([r.get(name, NAN) for r in rows])):
            r[name + MARGIN_SUFFIX] = value


def margins(values: Sequence[float]) -> list[float]:
    """Each value minus the largest of the others (NaN values are skipped; NaN when the
    value or every other one is missing): ``[3, 1, 2]`` -> ``[1, -2, -1]``."""
    known = sorted(((v, i) for i, v in enumerate(values) if not math.isnan(v)), reverse=True)
    out = []
    for i, v in enumerate(values):
        others = [u for u, j in known[:2] if j != i]
        out.append(v - others[0] if others and not math.isnan(v) else NAN)
    return out
