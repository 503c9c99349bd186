"""Features of a (query, candidate) pair for the ``pair-gbdt`` reranker, as pure functions.

Stage 1 leaves per-vector similarities (``sim_<vector>``) and the stage-1 score and
rank on each candidate; this module adds what titles, prices and hashes tell:
word and character-trigram overlap, agreement of numbers with units (``128gb`` vs
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
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

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

_UNITS = (
    "gb|tb|mb|kb|ghz|mhz|hz|mah|mm|cm|km|ml|l|ltr|kg|gr|g|mg|oz|lb|lbs|in|inch|ft|w|kw|v|"
    "mp|pcs|pc|x|pk|pack|gram|liter|litre|watt|volt|cc|m"
)
_UNIT_ALIASES = {
    "ltr": "l",
    "liter": "l",
    "litre": "l",
    "inch": "in",
    "gr": "g",
    "gram": "g",
    "lbs": "lb",
    "pc": "pcs",
    "pk": "pack",
    "watt": "w",
    "volt": "v",
}
_NUM_UNIT_RE = re.compile(rf"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*({_UNITS})(?![a-z0-9])")
_WORD_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_COMPOUND_RE = re.compile(r"[a-z0-9]+(?:[-/][a-z0-9]+)*")


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """Lower case, accents folded, numbers joined to their units (``128 GB`` -> ``128gb``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NUM_UNIT_RE.sub(r"\1\2", text)


def words(text: str) -> set[str]:
    """The distinct word tokens of a title (decimals such as ``2.7`` stay whole)."""
    return set(_WORD_RE.findall(normalize(text)))


def char_ngrams(text: str, n: int = 3) -> set[str]:
    """Character n-grams of the title's words joined by single spaces."""
    joined = " ".join(_WORD_RE.findall(normalize(text)))
    return {joined[i : i + n] for i in range(len(joined) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|; NaN when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else NAN


def num_units(text: str) -> dict[str, set[str]]:
    """Numbers with a unit, by canonical unit: ``"128gb 8 gb 6.1 inch 2 liter"`` ->
    ``{gb: {128, 8}, in: {6.1}, l: {2}}``."""
    out: dict[str, set[str]] = {}
    for value, unit in _NUM_UNIT_RE.findall(normalize(text)):
        value = value.rstrip("0").rstrip(".") if "." in value else value
        out.setdefault(_UNIT_ALIASES.get(unit, unit), set()).add(value)
    return out


def unit_agreement(a: str, b: str) -> tuple[float, float]:
    """(shared, conflicting) number+unit tokens. For each unit both titles use, the
    values found on both sides are shared; the values one side cannot pair with the
    other's count as conflicts (the larger leftover): ``128gb`` vs ``256gb`` -> (0, 1)."""
    ua, ub = num_units(a), num_units(b)
    shared = conflict = 0
    for unit in ua.keys() & ub.keys():
        va, vb = ua[unit], ub[unit]
        shared += len(va & vb)
        conflict += max(len(va - vb), len(vb - va))
    return float(shared), float(conflict)


def numbers(text: str) -> set[str]:
    """Bare numbers of a title (``eiffel 3`` -> ``{3}``); numbers with units are left out."""
    return {w for w in _WORD_RE.findall(normalize(text)) if w.replace(".", "", 1).isdigit()}


def overlap(a: set[str], b: set[str]) -> tuple[float, float]:
    """(shared, conflicting): items in both, and the items neither side can pair
    (the smaller leftover, so one side listing more is no conflict)."""
    return float(len(a & b)), float(min(len(a - b), len(b - a)))


#: Digits-only tokens this long are part numbers (``010-00715-20``, a UPC); shorter ones
#: are sizes, years and counts, which ``numbers`` compares.
PART_NUMBER_DIGITS = 6


def part_numbers(text: str) -> set[str]:
    """Digits-only part numbers, hyphens and slashes dropped (``010-00715-20`` ->
    ``0100071520``), at least ``PART_NUMBER_DIGITS`` long."""
    out = set()
    for tok in _COMPOUND_RE.findall(normalize(text)):
        code = tok.replace("-", "").replace("/", "")
        if code.isdigit() and len(code) >= PART_NUMBER_DIGITS:
            out.add(code)
    return out


def model_codes(text: str) -> set[str]:
    """Model-number-like tokens: letters and digits mixed, hyphens and slashes dropped
    (``lc-26dv24u`` -> ``lc26dv24u``), at least 3 characters, not a number+unit."""
    out = set()
    for tok in _COMPOUND_RE.findall(normalize(text)):
        code = tok.replace("-", "").replace("/", "")
        if len(code) < 3 or not re.search(r"\d", code) or not re.search(r"[a-z]", code):
            continue
        if _NUM_UNIT_RE.fullmatch(code):
            continue
        out.add(code)
    return out


def squash(text: str) -> str:
    """The title's letters and digits only, for substring tests on model codes."""
    return re.sub(r"[^a-z0-9]", "", normalize(text))


def model_agreement(a: str, b: str) -> tuple[float, float, float]:
    """(shared, conflicting, substring) model codes: codes in both; codes neither side
    can pair (the smaller leftover, 0 when one side has none); and the best fraction
    of one side's codes found inside the other's squashed title (NaN without codes)."""
    ca, cb = model_codes(a), model_codes(b)
    shared, conflict = overlap(ca, cb)
    fracs = []
    for codes, other in ((ca, squash(b)), (cb, squash(a))):
        if codes:
            fracs.append(sum(c in other for c in codes) / len(codes))
    return shared, conflict, max(fracs) if fracs else NAN


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


def wb_ngrams(text: str, lo: int = 2, hi: int = 4) -> Counter[str]:
    """Counts of the character n-grams of each word padded with spaces (scikit-learn's
    ``char_wb``), on the normalised title."""
    out: Counter[str] = Counter()
    for word in _WORD_RE.findall(normalize(text)):
        padded = f" {word} "
        for n in range(lo, hi + 1):
            out.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


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
