"""The Reranker protocol, the registry of reranker kinds and the text formatter.

A reranker scores (query, candidate) pairs; ``rerank`` / ``rerank_batch`` return the
candidates rescored and sorted (new candidates; the input is left as it was). Device choice, batching and model loading
live in each implementation. Specs read ``KIND[:MODEL][,key=value...]``, e.g.
``cross-encoder:BAAI/bge-reranker-v2-m3,batch_size=32`` or ``pair-gbdt:model.txt``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import Field, field_validator

from retrieval.atomic import write_json
from retrieval.errors import UsageError
from retrieval.registry import Registry
from retrieval.types import Candidate, Product, product_text
from retrieval.validation import Strict, one_of, read_json, validated

Pair = tuple[Product, Candidate]
# Modules whose import registers a kind; imported on first use so torch stays unloaded.
_MODULES = {
    "cross-encoder": "rerank.cross_encoder",
    "qwen-vl": "rerank.qwen_vl",
    "pair-gbdt": "rerank.pair_gbdt",
    "flag": "rerank.flag",
    "flag-llm": "rerank.flag",
    "flag-layerwise": "rerank.layerwise",
}


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, candidate) pairs; higher means more likely the same product.

    ``needs_features``: the reranker reads the per-vector similarities of each pair
    (``candidate.features["sim_<vector>"]``), which the pipeline adds before scoring."""

    spec: str
    needs_features: bool

    def score(self, pairs: Sequence[Pair]) -> list[float]:
        """One score per pair, in order. Pairs may come from many queries."""
        ...


# A run of letters and digits split by hyphens or slashes (``010-00715-20``, ``lcs-twa/r``).
_SPLIT_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?:[-/][A-Za-z0-9]+)+(?![A-Za-z0-9])")
#: How a learned reranker reads text: ``raw`` as stored; ``codes``: the separators inside
#: a product code with a digit dropped (``010-00715-20`` -> ``0100071520``,
#: ``ysp-3050bl`` -> ``ysp3050bl``), so one code written two ways tokenises alike.
TEXT_FORMS = ("raw", "codes")


def join_codes(text: str) -> str:
    """``text`` with the hyphens and slashes inside digit-bearing codes dropped; words
    such as ``tv/dvd`` or ``over-the-range`` (no digit) are left as they are."""
    return _SPLIT_CODE.sub(
        lambda m: re.sub(r"[-/]", "", m[0]) if any(ch.isdigit() for ch in m[0]) else m[0], text
    )


def parse_fields(value: str | None) -> tuple[str, ...]:
    """``brand+description`` -> ``("brand", "description")``."""
    return tuple(f.strip() for f in (value or "").split("+") if f.strip())


def text_form(text: str, form: str) -> str:
    """``text`` as a reranker trained on ``form`` (``TEXT_FORMS``) reads it."""
    return join_codes(text) if form == "codes" else text


#: Written by our reranker trainers next to the weights: how the model reads products
#: and how far it leans on stage 1 (``{"text": FORM, "fields": [...], "stage1_weight": W}``),
#: so the reranker reads and scores alike.
TEXT_SIDECAR = "search_reranker.json"


def stage1_prior(rank: int) -> float:
    """What a candidate's stage-1 rank adds to a reranker's logit per unit of weight:
    ``-log2(1 + rank)`` (rank 1 first: -1, rank 3: -2, rank 7: -3); 0 for an unknown rank
    (below 1). Logarithmic, so the top of the list is told apart and the tail is not."""
    return -math.log2(1 + rank) if rank >= 1 else 0.0


def lean_on_stage1_rank(
    logits: Sequence[float], pairs: Sequence[Pair], weight: float
) -> list[float]:
    """Each pair's logit plus ``weight * stage1_prior`` of its candidate's stage-1 rank."""
    if not weight:
        return list(logits)
    return [z + weight * stage1_prior(c.stage1_rank) for z, (_, c) in zip(logits, pairs)]


def sigmoid(z: float) -> float:
    """1 / (1 + e^-z), clipped so a huge logit cannot overflow."""
    return 1.0 / (1.0 + math.exp(-min(max(z, -60.0), 60.0)))


@dataclass(frozen=True)
class TrainedReading:
    """What a reranker folder we trained records (``TEXT_SIDECAR``): the text form, the
    product fields, and ``stage1_weight``: the weight of ``stage1_prior`` added to the
    model's logit, chosen on valid by the trainer (0: the model alone)."""

    form: str = "raw"
    fields: tuple[str, ...] = ()
    stage1_weight: float = 0.0


class ReadingFile(Strict):
    """``TEXT_SIDECAR`` as a file: what ``trained_reading`` accepts."""

    text: str = "raw"
    fields: list[str] = Field(default_factory=list)
    stage1_weight: float = 0.0

    @field_validator("text")
    @classmethod
    def _known_form(cls, value: str) -> str:
        return one_of(value, TEXT_FORMS, "text form")

    @field_validator("stage1_weight")
    @classmethod
    def _weight(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be a number >= 0")
        return value


def trained_reading(model: str | Path) -> TrainedReading:
    """The sidecar of a reranker folder; the defaults (raw titles, no fields, no stage-1
    weight) for a hub name or a folder we did not train. A bad sidecar (``ReadingFile``)
    is one line naming the file and the key."""
    path = Path(model) / TEXT_SIDECAR
    if not path.is_file():
        return TrainedReading()
    data = read_json(path, "reranker sidecar")
    if not isinstance(data, dict):
        raise UsageError(f"cannot read {path}: not a JSON object")
    reading = validated(ReadingFile, data, path)
    return TrainedReading(reading.text, tuple(reading.fields), reading.stage1_weight)


def write_reading(out: str | Path, reading: TrainedReading) -> None:
    """Write a trained folder's ``TEXT_SIDECAR`` (whole or not at all), as
    ``trained_reading`` reads it back."""
    write_json(
        Path(out) / TEXT_SIDECAR,
        {
            "text": reading.form,
            "fields": list(reading.fields),
            "stage1_weight": reading.stage1_weight,
        },
    )


@dataclass(frozen=True)
class Formatter:
    """Turns a product into the text a model reads: its title, then chosen fields
    (``fields=brand+description`` in a spec), each as ``name: value``, in the text form
    the model was trained on (``TEXT_FORMS``)."""

    fields: tuple[str, ...] = ()
    max_chars: int = 1000
    form: str = "raw"

    @classmethod
    def from_option(cls, value: str | None, form: str = "raw") -> Formatter:
        return cls(parse_fields(value), form=form)

    def __call__(self, product: Product) -> str:
        text = product_text(product, self.fields, sep=" | ", labels=True)[: self.max_chars]
        return text_form(text, self.form)


#: Reranker factories ``factory(model, **options) -> Reranker`` by exact kind name; the
#: kinds of ``_MODULES`` register on first use. ``register_reranker(name)`` decorates a
#: factory, ``reranker_kinds()`` lists the kinds, ``build_reranker(spec)`` builds from
#: ``KIND[:MODEL][,key=value...]`` (an unknown kind lists the known).
RERANKERS: Registry[Reranker] = Registry("reranker", lazy=_MODULES)
register_reranker = RERANKERS.register
reranker_kinds = RERANKERS.kinds
build_reranker = RERANKERS.build


@dataclass
class RerankStats:
    """Counts a batch run reports (truncated titles, unreadable images, ...)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def rerank(reranker: Reranker, query: Product, candidates: Sequence[Candidate]) -> list[Candidate]:
    """One query's candidates rescored, best first."""
    return rerank_batch(reranker, [(query, candidates)])[0]


def rerank_batch(
    reranker: Reranker, items: Sequence[tuple[Product, Sequence[Candidate]]]
) -> list[list[Candidate]]:
    """The candidates of many queries rescored in one call (the reranker batches across
    queries), each list best first; an empty list stays empty. The input candidates are
    not changed: each one comes back as a copy carrying its stage-2 score."""
    pairs = [(q, c) for q, cands in items for c in cands]
    scores = reranker.score(pairs) if pairs else []
    if len(scores) != len(pairs):
        raise RuntimeError(f"{reranker.spec} returned {len(scores)} scores for {len(pairs)} pairs")
    it = iter(scores)
    out = []
    for _, cands in items:
        scored = [replace(c, features=dict(c.features), score=float(next(it))) for c in cands]
        out.append(sorted(scored, key=lambda c: (-(c.score or 0.0), c.stage1_rank)))
    return out
