"""What a product title says, as pure functions over text: the normalised title (lower
case, accents folded, numbers joined to their units), its words and character n-grams,
numbers with units (``128gb`` vs ``256gb``), bare numbers, model codes (``lc-26dv24u``)
and digits-only part numbers (``010-00715-20``), and how two titles agree on each
(shared, conflicting). The per-title functions are memoised (a title meets many
candidates) and return frozen values. ``rerank.pair_features`` turns them into a pair's features;
``search.match.text_features`` weighs the same tokens by rarity.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from functools import lru_cache
from types import MappingProxyType

NAN = math.nan
NORMALIZED = 65536  # titles whose normalised text is kept
TOKENS = 16384  # titles whose token sets are kept (about 4.5 KB a 54-character title)

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
WORD_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_COMPOUND_RE = re.compile(r"[a-z0-9]+(?:[-/][a-z0-9]+)*")


@lru_cache(maxsize=NORMALIZED)
def normalize(text: str) -> str:
    """Lower case, accents folded, numbers joined to their units (``128 GB`` -> ``128gb``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NUM_UNIT_RE.sub(r"\1\2", text)


@lru_cache(maxsize=TOKENS)
def words(text: str) -> frozenset[str]:
    """The distinct word tokens of a title (decimals such as ``2.7`` stay whole)."""
    return frozenset(WORD_RE.findall(normalize(text)))


@lru_cache(maxsize=TOKENS)
def char_ngrams(text: str, n: int = 3) -> frozenset[str]:
    """Character n-grams of the title's words joined by single spaces."""
    joined = " ".join(WORD_RE.findall(normalize(text)))
    return frozenset(joined[i : i + n] for i in range(len(joined) - n + 1))


def jaccard(a: AbstractSet[str], b: AbstractSet[str]) -> float:
    """|a & b| / |a | b|; NaN when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else NAN


@lru_cache(maxsize=TOKENS)
def num_units(text: str) -> Mapping[str, frozenset[str]]:
    """Numbers with a unit, by canonical unit: ``"128gb 8 gb 6.1 inch 2 liter"`` ->
    ``{gb: {128, 8}, in: {6.1}, l: {2}}`` (read-only)."""
    out: dict[str, set[str]] = {}
    for value, unit in _NUM_UNIT_RE.findall(normalize(text)):
        value = value.rstrip("0").rstrip(".") if "." in value else value
        out.setdefault(_UNIT_ALIASES.get(unit, unit), set()).add(value)
    return MappingProxyType({unit: frozenset(values) for unit, values in out.items()})


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


@lru_cache(maxsize=TOKENS)
def numbers(text: str) -> frozenset[str]:
    """Bare numbers of a title (``eiffel 3`` -> ``{3}``); numbers with units are left out."""
    return frozenset(w for w in WORD_RE.findall(normalize(text)) if w.replace(".", "", 1).isdigit())


def overlap(a: AbstractSet[str], b: AbstractSet[str]) -> tuple[float, float]:
    """(shared, conflicting): items in both, and the items neither side can pair
    (the smaller leftover, so one side listing more is no conflict)."""
    return float(len(a & b)), float(min(len(a - b), len(b - a)))


#: Digits-only tokens this long are part numbers (``010-00715-20``, a UPC); shorter ones
#: are sizes, years and counts, which ``numbers`` compares.
PART_NUMBER_DIGITS = 6


@lru_cache(maxsize=TOKENS)
def part_numbers(text: str) -> frozenset[str]:
    """Digits-only part numbers, hyphens and slashes dropped (``010-00715-20`` ->
    ``0100071520``), at least ``PART_NUMBER_DIGITS`` long."""
    out = set()
    for tok in _COMPOUND_RE.findall(normalize(text)):
        code = tok.replace("-", "").replace("/", "")
        if code.isdigit() and len(code) >= PART_NUMBER_DIGITS:
            out.add(code)
    return frozenset(out)


@lru_cache(maxsize=TOKENS)
def model_codes(text: str) -> frozenset[str]:
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
    return frozenset(out)


@lru_cache(maxsize=TOKENS)
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


def wb_ngrams(text: str, lo: int = 2, hi: int = 4) -> Counter[str]:
    """Counts of the character n-grams of each word padded with spaces (scikit-learn's
    ``char_wb``), on the normalised title."""
    out: Counter[str] = Counter()
    for word in WORD_RE.findall(normalize(text)):
        padded = f" {word} "
        for n in range(lo, hi + 1):
            out.update(padded[i : i + n] for i in range(len(padded) - n + 1))
    return out
